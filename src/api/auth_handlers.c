/* POST /auth/register, POST /auth/login, POST /auth/refresh, GET /me.
 *
 * Register: validate -> hash (crypto pool) -> insert (store) -> token.
 * Login: look up (store) -> verify (crypto pool, against a dummy hash when
 * the email is unknown, so both failures cost the same) -> token. */
#include "api/call.h"
#include "api/handlers.h"
#include "api/render.h"
#include "auth/token.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <stdlib.h>
#include <string.h>

/* Answers {"token", "user"} with a fresh token for user. */
static void respond_with_token(http_request_t *req, int status, const store_user_t *user) {
    app_t *app = req->app;
    char *token = NULL;
    int64_t lifetime_s = (int64_t)app->cfg->jwt_expiration_hours * 3600;
    if (token_issue(app->jwt_secret, app->jwt_secret_len, user->id, user->email, user->username,
                    time_wall_ms() / 1000, lifetime_s, &token) != 0) {
        http_respond_error(req, 500, "internal", "internal error");
        return;
    }
    buf_t body = BUF_INIT;
    api_respond_rendered(req, status, &body, render_token_answer(&body, token, user));
    free(token);
}

static int copy_password(api_call_t *call, const char *password, size_t len) {
    call->password = malloc(len + 1);
    if (call->password == NULL) {
        http_respond_error(call->req, 500, "internal", "internal error");
        return -1;
    }
    memcpy(call->password, password, len);
    call->password[len] = '\0';
    call->password_len = len;
    return 0;
}

static int submit_crypto(api_call_t *call, crypto_op_t op, const char *stored_hash,
                         crypto_done_cb done) {
    call->crypto.op = op;
    call->crypto.password = call->password;
    call->crypto.password_len = call->password_len;
    call->crypto.stored_hash = stored_hash;
    call->crypto.done = done;
    call->crypto.data = call;
    if (crypto_submit(call->req->inbox, &call->crypto) != 0) {
        http_respond_error(call->req, 503, "unavailable", "too many logins at once, try again");
        api_call_free(call);
        return -1;
    }
    return 0;
}

static void register_stored(store_job_t *job) {
    api_call_t *call = job->data;
    if (job->out.status == STORE_OK)
        respond_with_token(call->req, 201, &job->out.user);
    else
        api_respond_store_error(call->req, job->out.status, "user");
    api_call_free(call);
}

static void register_hashed(crypto_job_t *crypto) {
    api_call_t *call = crypto->data;
    if (!crypto->ok) {
        http_respond_error(call->req, 500, "internal", "internal error");
        api_call_free(call);
        return;
    }
    const char *username = json_string_value(json_object_get(call->body, "username"));
    api_call_job(call, STORE_USER_CREATE, register_stored);
    call->job.in.email = call->email;
    call->job.in.username = username;
    call->job.in.password_hash = call->crypto.hash;
    api_call_submit(call);
}

void handle_register(http_request_t *req) {
    if (api_limit_auth(req) != 0)
        return;
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    json_t *body = call->body;
    const char *email, *password, *username, *problem;
    size_t email_len, password_len, username_len;
    if (api_string_field(req, body, "email", true, &email, &email_len) != 0 ||
        api_string_field(req, body, "password", true, &password, &password_len) != 0 ||
        api_string_field(req, body, "username", true, &username, &username_len) != 0)
        goto done;
    if ((problem = validate_email(email, email_len, call->email)) != NULL ||
        (problem = validate_password(password, password_len)) != NULL ||
        (problem = validate_username(username, username_len)) != NULL) {
        api_fail_validation(req, problem);
        goto done;
    }
    if (copy_password(call, password, password_len) != 0)
        goto done;
    submit_crypto(call, CRYPTO_HASH, NULL, register_hashed);
    return;
done:
    api_call_free(call);
}

static void login_verified(crypto_job_t *crypto) {
    api_call_t *call = crypto->data;
    if (crypto->ok && call->job.out.status == STORE_OK)
        respond_with_token(call->req, 200, &call->job.out.user);
    else
        http_respond_error(call->req, 401, "invalid_credentials", "invalid email or password");
    api_call_free(call);
}

static void login_looked_up(store_job_t *job) {
    api_call_t *call = job->data;
    if (job->out.status != STORE_OK && job->out.status != STORE_NOT_FOUND) {
        api_respond_store_error(call->req, job->out.status, "user");
        api_call_free(call);
        return;
    }
    /* Unknown email: verify against the dummy hash, which never matches but
     * costs the same as a real verification. */
    const char *hash = job->out.status == STORE_OK ? job->out.user.password_hash : NULL;
    submit_crypto(call, CRYPTO_VERIFY, hash, login_verified);
}

void handle_login(http_request_t *req) {
    if (api_limit_auth(req) != 0)
        return;
    api_call_t *call = api_call_with_body(req);
    if (call == NULL)
        return;
    json_t *body = call->body;
    const char *email, *password;
    size_t email_len, password_len;
    if (api_string_field(req, body, "email", true, &email, &email_len) != 0 ||
        api_string_field(req, body, "password", true, &password, &password_len) != 0 ||
        copy_password(call, password, password_len) != 0) {
        api_call_free(call);
        return;
    }
    /* A malformed address cannot belong to anyone; it still goes through the
     * same lookup and verification so its answer looks like any other. */
    if (validate_email(email, email_len, call->email) != NULL)
        call->email[0] = '\0';
    api_call_job(call, STORE_USER_BY_EMAIL, login_looked_up);
    call->job.in.email = call->email;
    api_call_submit(call);
}

/* Returns 0 when the current user was found; otherwise answers and frees. */
static int current_user_found(api_call_t *call) {
    store_status_t status = call->job.out.status;
    if (status == STORE_OK)
        return 0;
    if (status == STORE_NOT_FOUND)
        http_respond_error(call->req, 401, "invalid_token", "the token's user no longer exists");
    else
        api_respond_store_error(call->req, status, "user");
    api_call_free(call);
    return -1;
}

static void me_looked_up(store_job_t *job) {
    api_call_t *call = job->data;
    if (current_user_found(call) != 0)
        return;
    buf_t out = BUF_INIT;
    api_respond_rendered(call->req, 200, &out, render_user(&out, &job->out.user));
    api_call_free(call);
}

static void refresh_looked_up(store_job_t *job) {
    api_call_t *call = job->data;
    if (current_user_found(call) != 0)
        return;
    respond_with_token(call->req, 200, &job->out.user);
    api_call_free(call);
}

/* Reads the token's user afresh, so a refreshed token carries current data
 * and a deleted user gets no new token. */
static void lookup_current_user(http_request_t *req, store_done_cb done) {
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    api_call_job(call, STORE_USER_BY_ID, done);
    call->job.in.user_id = req->auth.user_id;
    api_call_submit(call);
}

void handle_refresh(http_request_t *req) {
    lookup_current_user(req, refresh_looked_up);
}

void handle_me(http_request_t *req) {
    lookup_current_user(req, me_looked_up);
}
