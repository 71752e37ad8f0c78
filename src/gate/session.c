/* gate/session.c — people (CONTRACT §3): user names and roles, the password policy, session ids
 * and CSRF tokens (random, stored only as a hash), the failed-login tracker (progressive delay,
 * lockout per name and per source address) and the writer helpers with which the server
 * changes people's rows (the writer owns every write of the server, ARCHITECTURE.md). */
#include "gate/gate.h"
#include "ingest/ingest.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- accounts */

bool dtm_role_valid(const char *role)
{
    static const char *const roles[] = {"admin", "operator", "analyst", "auditor"};
    for (size_t i = 0; role && i < DTM_ARRAY_LEN(roles); i++)
        if (strcmp(role, roles[i]) == 0)
            return true;
    return false;
}

bool dtm_username_valid(const char *u)
{
    size_t n = u ? strlen(u) : 0;
    if (n == 0 || n >= DTM_USERNAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = u[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* A short list of the passwords most often tried first (public breach statistics) and of the
 * obvious ones of this installation; compared without regard to case. */
static const char *const common_passwords[] = {
    "123456789012",  "1234567890123", "12345678901234", "123456123456",     "111111111111",
    "000000000000",  "password1234",  "password12345",  "passwordpassword", "qwertyuiop12",
    "qwertyuiop123", "qwerty123456",  "1q2w3e4r5t6y",   "1qaz2wsx3edc",     "abc123abc123",
    "iloveyou1234",  "administrator", "admin1234567",   "adminadmin123",    "letmein12345",
    "welcome12345",  "welcome123456", "changeme1234",   "trustno1trustno1", "p@ssw0rd1234",
    "passw0rd1234",  "matkhau12345",  "matkhau123456",  "abcdefghijkl",     "qwertyqwerty",
    "zaq12wsxcde3",  "123qweasdzxc",  "dtm123456789",   "vietnam12345",     "hanoi1234567",
    "football1234",  "baseball1234",  "superman1234",   "monkey123456",     "dragon123456",
    "sunshine1234",  "princess1234",  "password123!",   "Password123!",     "aaaaaaaaaaaa",
};

const char *dtm_password_policy(const char *username, const char *password)
{
    size_t n = password ? strlen(password) : 0;
    if (n < DTM_PASSWORD_MIN)
        return "The password must have at least 12 characters.";
    if (n > DTM_PASSWORD_MAX)
        return "The password must have at most 1024 characters.";
    if (username && strcasecmp(password, username) == 0)
        return "The password must not be the user name.";
    for (size_t i = 0; i < DTM_ARRAY_LEN(common_passwords); i++)
        if (strcasecmp(password, common_passwords[i]) == 0)
            return "The password is too common; choose another one.";
    return NULL;
}

/* ---- sessions */

static void base64url(const uint8_t *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

int dtm_session_new(char id[DTM_SESSION_ID_MAX], uint8_t hash[32], char csrf[48])
{
    uint8_t raw[32], c[16];
    if (dtm_random(raw, sizeof(raw)) || dtm_random(c, sizeof(c)))
        return DTM_EIO;
    base64url(raw, sizeof(raw), id);
    base64url(c, sizeof(c), csrf);
    dtm_session_hash(dtm_str_c(id), hash);
    OPENSSL_cleanse(raw, sizeof(raw));
    return DTM_OK;
}

void dtm_session_hash(struct dtm_str id, uint8_t hash[32])
{
    dtm_sha256(id.p ? id.p : "", id.n, hash);
}

/* ---- failed logins */

#define TRACK_SLOTS 4096
#define DELAY_BASE_US 250000LL
#define DELAY_MAX_US 30000000LL

struct track {
    uint8_t key[16]; /* SHA-256 of "u:" name or "i:" address, cut */
    bool used;
    int64_t fails;        /* failures in a row (name) or within the window (address) */
    int64_t last_fail;    /* µs */
    int64_t locked_until; /* µs; 0 = not locked */
};

static struct track tracks[TRACK_SLOTS];
static pthread_mutex_t tracks_lock = PTHREAD_MUTEX_INITIALIZER;

static void track_key(char kind, const char *v, uint8_t out[16])
{
    char buf[128];
    uint8_t h[32];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%c:%s", kind, v ? v : "");
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    for (size_t i = 2; i < n; i++)
        buf[i] = (char)tolower((unsigned char)buf[i]);
    dtm_sha256(buf, n, h);
    memcpy(out, h, 16);
}

/* The slot of a key (created when create; the least recently failed one gives way). Under
 * tracks_lock. */
static struct track *track_find(const uint8_t key[16], bool create)
{
    struct track *oldest = NULL;
    for (size_t i = 0; i < TRACK_SLOTS; i++) {
        struct track *t = &tracks[i];
        if (t->used && memcmp(t->key, key, 16) == 0)
            return t;
        if (!oldest || !t->used || (oldest->used && t->last_fail < oldest->last_fail))
            oldest = t;
    }
    if (!create)
        return NULL;
    memset(oldest, 0, sizeof(*oldest));
    memcpy(oldest->key, key, 16);
    oldest->used = true;
    return oldest;
}

static int64_t lock_us(const struct dtm_conf *c)
{
    return c->session_lockout_minutes * 60 * 1000000;
}

/* Forgets failures older than the lockout window and locks that have run out. */
static void track_age(const struct dtm_conf *c, struct track *t, int64_t now)
{
    if (t->locked_until && now >= t->locked_until) {
        t->locked_until = 0;
        t->fails = 0;
    }
    if (t->fails && now - t->last_fail > lock_us(c))
        t->fails = 0;
}

static int64_t ceil_s(int64_t us)
{
    int64_t s = (us + 999999) / 1000000;
    return s < 1 ? 1 : s;
}

enum dtm_login_gate dtm_login_check(const struct dtm_conf *c, const char *username, const char *ip,
                                    int64_t now, int64_t *retry_s)
{
    uint8_t ku[16], ki[16];
    struct track *t;
    enum dtm_login_gate g = DTM_LOGIN_OK;
    track_key('u', username, ku);
    track_key('i', ip, ki);
    *retry_s = 0;
    pthread_mutex_lock(&tracks_lock);
    if ((t = track_find(ki, false))) {
        track_age(c, t, now);
        if (t->locked_until) {
            g = DTM_LOGIN_IP_LOCKED;
            *retry_s = ceil_s(t->locked_until - now);
        }
    }
    if (g == DTM_LOGIN_OK && (t = track_find(ku, false))) {
        track_age(c, t, now);
        if (t->locked_until) {
            g = DTM_LOGIN_LOCKED;
            *retry_s = ceil_s(t->locked_until - now);
        } else if (t->fails > 0) {
            int64_t shift = DTM_MIN(t->fails - 1, 20);
            int64_t wait = DTM_MIN(DELAY_BASE_US << shift, DELAY_MAX_US);
            if (now < t->last_fail + wait) {
                g = DTM_LOGIN_TOO_SOON;
                *retry_s = ceil_s(t->last_fail + wait - now);
            }
        }
    }
    pthread_mutex_unlock(&tracks_lock);
    return g;
}

bool dtm_login_failed(const struct dtm_conf *c, const char *username, const char *ip, int64_t now)
{
    uint8_t ku[16], ki[16];
    struct track *t;
    bool locked = false;
    track_key('u', username, ku);
    track_key('i', ip, ki);
    pthread_mutex_lock(&tracks_lock);
    t = track_find(ki, true);
    track_age(c, t, now);
    t->fails++;
    t->last_fail = now;
    if (!t->locked_until && t->fails >= c->session_ip_lockout_after)
        t->locked_until = now + lock_us(c);
    t = track_find(ku, true);
    track_age(c, t, now);
    t->fails++;
    t->last_fail = now;
    if (!t->locked_until && t->fails >= c->session_lockout_after) {
        t->locked_until = now + lock_us(c);
        locked = true;
    }
    pthread_mutex_unlock(&tracks_lock);
    return locked;
}

void dtm_login_succeeded(const char *username)
{
    uint8_t ku[16];
    struct track *t;
    track_key('u', username, ku);
    pthread_mutex_lock(&tracks_lock);
    if ((t = track_find(ku, false)))
        memset(t, 0, sizeof(*t));
    pthread_mutex_unlock(&tracks_lock);
}

/* ---- writes through the server's writer */

struct people_job {
    struct dtm_write_job job; /* first: the writer hands back this pointer */
    dtm_gate_txn_fn fn;
    void *ctx;
    bool wait;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    /* async: a copy of the context follows */
};

static int job_txn(struct dtm_write_job *j, struct dtm_store *st)
{
    struct people_job *p = (struct people_job *)(void *)j;
    return p->fn(p->ctx, st);
}

static void job_done(struct dtm_write_job *j)
{
    struct people_job *p = (struct people_job *)(void *)j;
    if (!p->wait) {
        free(p);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->done = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

int dtm_gate_write(struct dtm_writer *w, dtm_gate_txn_fn fn, void *ctx)
{
    struct people_job p;
    int rc;
    memset(&p, 0, sizeof(p));
    p.job.dataset = "";
    p.job.system_code = "";
    p.job.in_txn = job_txn;
    p.job.done = job_done;
    p.fn = fn;
    p.ctx = ctx;
    p.wait = true;
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    if ((rc = dtm_writer_submit(w, &p.job)) == DTM_OK) {
        pthread_mutex_lock(&p.lock);
        while (!p.done)
            pthread_cond_wait(&p.cond, &p.lock);
        pthread_mutex_unlock(&p.lock);
        rc = p.job.rc;
    }
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.cond);
    return rc;
}

int dtm_gate_write_async(struct dtm_writer *w, dtm_gate_txn_fn fn, const void *ctx, size_t n)
{
    struct people_job *p = calloc(1, sizeof(*p) + n);
    int rc;
    if (!p)
        return DTM_ENOMEM;
    p->job.dataset = "";
    p->job.system_code = "";
    p->job.in_txn = job_txn;
    p->job.done = job_done;
    p->job.relaxed = true; /* nobody waits for it */
    p->fn = fn;
    p->ctx = p + 1;
    memcpy(p->ctx, ctx, n);
    if ((rc = dtm_writer_submit(w, &p->job)))
        free(p);
    return rc;
}
