#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

long proc_rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

double proc_cpu_s(pid_t pid) {
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name may hold spaces and parentheses: fields follow the last ')'. */
    char *p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    unsigned long utime = 0, stime = 0;
    /* After ')': state is field 3; utime and stime are fields 14 and 15. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The inode of the listening socket on port in one /proc/net/tcp* table. */
static unsigned long listener_inode(const char *table, int port) {
    FILE *f = fopen(table, "r");
    if (f == NULL)
        return 0;
    char line[512];
    unsigned long found = 0;
    if (fgets(line, sizeof(line), f) == NULL) { /* column titles */
        fclose(f);
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char local[128];
        unsigned st;
        unsigned long inode;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3)
            continue;
        char *colon = strrchr(local, ':');
        if (colon == NULL || st != 0x0A)
            continue;
        if ((int)strtol(colon + 1, NULL, 16) == port) {
            found = inode;
            break;
        }
    }
    fclose(f);
    return found;
}

static int pid_has_socket(const char *pid, const char *want) {
    char dirpath[64];
    snprintf(dirpath, sizeof(dirpath), "/proc/%s/fd", pid);
    DIR *d = opendir(dirpath);
    if (d == NULL)
        return 0;
    struct dirent *e;
    int hit = 0;
    while (!hit && (e = readdir(d)) != NULL) {
        char link[600], target[64];
        snprintf(link, sizeof(link), "%s/%s", dirpath, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            hit = strcmp(target, want) == 0;
        }
    }
    closedir(d);
    return hit;
}

pid_t proc_find_listener(int port) {
    unsigned long inode = listener_inode("/proc/net/tcp", port);
    if (inode == 0)
        inode = listener_inode("/proc/net/tcp6", port);
    if (inode == 0)
        return -1;
    char want[64];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    pid_t pid = -1;
    struct dirent *e;
    while (pid < 0 && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]) || atoi(e->d_name) == (int)getpid())
            continue;
        if (pid_has_socket(e->d_name, want))
            pid = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return pid;
}

long raise_nofile(long need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((rlim_t)need > rl.rlim_cur) {
        rl.rlim_cur = (rlim_t)need < rl.rlim_max ? (rlim_t)need : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}
