# Plots of bench/run_bench.sh's scaling runs (gnuplot 5, Debian gnuplot-nox):
#   gnuplot -e "datadir='bench/results/ws-<time>'" bench/ws_plots.gp
# reads scaling-subs.dat and scaling-rss.dat there and writes
# bench-throughput.svg and bench-rss.svg beside them.

if (!exists("datadir")) datadir = "."

set terminal svg size 720,460 dynamic enhanced font "sans,12" background rgb "white"
set grid lc rgb "#dddddd"
set key at screen 0.5,0.02 center bottom horizontal maxrows 2 box
set bmargin 7
set border 3
set tics nomirror

# ---- throughput (max rate) and p99 (fixed 100k deliveries/s) against subscribers per room
set output datadir."/bench-throughput.svg"
set title "chatd, 1 room, 1 publisher: cost as the room grows"
set xlabel "subscribers per room"
set logscale x
set xrange [50:20000]
set ylabel "deliveries/s at max rate (millions)"
set yrange [0:*]
set y2label "latency at 100k deliveries/s (ms, log scale)"
set y2tics nomirror
set logscale y2
set y2range [*:*]
set format x "%.0f"
plot datadir."/scaling-subs.dat" using 1:($2/1e6) axes x1y1 with linespoints lw 2 pt 7 \
       lc rgb "#1f77b4" title "deliveries/s, max rate (left)", \
     "" using 1:4 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#d62728" title "p99 ms, fixed load (right)", \
     "" using 1:3 axes x1y2 with linespoints lw 1 pt 4 dt 2 lc rgb "#ff7f0e" title "p50 ms, fixed load (right)"

# ---- server RSS against idle connections
set output datadir."/bench-rss.svg"
set title "chatd: server memory (VmRSS) with idle authenticated WebSockets"
set xlabel "idle connections"
unset logscale x
unset logscale y2
set xrange [0:*]
set format x "%.0f"
set ylabel "server RSS (MiB)"
set yrange [0:*]
set y2label "bytes per connection"
set y2range [0:*]
plot datadir."/scaling-rss.dat" using 1:3 axes x1y1 with linespoints lw 2 pt 7 lc rgb "#1f77b4" \
       title "RSS held (left)", \
     "" using 1:2 axes x1y1 with lines dt 2 lc rgb "#7f7f7f" title "RSS before connecting (left)", \
     "" using 1:4 axes x1y2 with linespoints lw 2 pt 5 lc rgb "#2ca02c" title "bytes per connection (right)"
