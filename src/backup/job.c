/* backup/job.c — the scheduled backups of `dtm serve` (issue 10): every `[backup] schedule_hours`
 * a backup (backup/backup.c) into `[backup] dir`, named dtm-YYYYMMDD-HHMMSS.dtmb (UTC+07:00),
 * keeping the newest `[backup] keep` there. When the last successful one was made is read from
 * the store (backup_runs, which every backup — scheduled or `dtm backup` — writes), so a
 * restarted server does not back up again early and one that was down long backs up soon after
 * it starts. The configuration is read again at each wake (SIGHUP changes it). */
#include "backup/backup.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIRST_CHECK_S 2 /* after the start */
#define WAKE_S 60       /* the configuration is looked at again at least this often */
#define RETRY_S 900     /* after a failure (disk full?), the next attempt at the earliest */
#define US 1000000LL

struct dtm_backup_job {
    const struct dtm_conf *const *conf;
    struct dtm_conf *c; /* the configuration of this wake (a backup reads it long) */
    struct dtm_periodic *clock;
    atomic_bool cancel; /* stops a backup under way (server stopping) */
    int64_t retry_at;   /* µs: after a failed backup, the next attempt not before */
};

/* µs of the last successful backup of the data dir (0 = none). */
static int64_t last_ok(const struct dtm_conf *c)
{
    struct dtm_store *st;
    struct dtm_backup_run run;
    char err[256];
    int64_t at = 0;
    if (dtm_store_open(c, &st, err, sizeof(err)))
        return 0;
    if (st->ops->backup_run_last(st, true, &run) == DTM_OK)
        at = run.at;
    st->ops->close(st);
    return at;
}

/* Several nodes sharing a PostgreSQL store (issue 9 item 3) each run this thread: the backup due
 * after the last successful one is made by the node whose claim of the round goes in first
 * (store job_claim; the round is the last backup's time and the RETRY_S window of now, so
 * after a failed attempt any node may try again in the next window). */
static bool claim_round(const struct dtm_conf *c, int64_t last)
{
    struct dtm_store *st;
    char err[256], host[256] = "", owner[300];
    int64_t now = dtm_now_us(), slot;
    int rc;
    if (dtm_store_open(c, &st, err, sizeof(err)))
        return false;
    if (gethostname(host, sizeof(host) - 1) != 0)
        host[0] = '\0';
    snprintf(owner, sizeof(owner), "%s:%ld", host, (long)getpid());
    slot = (last / 1000000) * 100000 + (now / (RETRY_S * 1000000LL)) % 100000;
    rc = st->ops->job_claim(st, "backup", slot, owner, now, now - 7 * 86400LL * 1000000LL);
    st->ops->close(st);
    if (rc == DTM_EEXIST)
        dtm_log(DTM_LOG_INFO, "scheduled backup claimed by another node", NULL);
    return rc == DTM_OK;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps the newest `keep` scheduled backups of dir (by name: the names sort by time). */
static void prune(const char *dir, int64_t keep)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL, path[DTM_PATH_MAX + 300];
    size_t n = 0, cap = 0;
    if (!d)
        return;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char *copy;
        if (len < 10 || strncmp(e->d_name, "dtm-", 4) != 0 ||
            strcmp(e->d_name + len - 5, ".dtmb") != 0)
            continue;
        if (dtm_array_reserve(&names, n, &cap, sizeof(*names)) || !(copy = strdup(e->d_name)))
            break;
        names[n++] = copy;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        if ((int64_t)(n - i) > keep) {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            if (unlink(path) == 0)
                dtm_logf(DTM_LOG_INFO, "old scheduled backup removed", "\"keep\":%lld",
                         (long long)keep);
        }
        free(names[i]);
    }
    free(names);
}

/* One scheduled backup; whether it was made. */
static bool backup_now(struct dtm_backup_job *j, const struct dtm_conf *c)
{
    struct dtm_backup_result res;
    char dir[DTM_PATH_MAX], path[DTM_PATH_MAX + 64], err[1024], stamp[32];
    int64_t local = dtm_now_us() / 1000000 + DTM_TZ_OFFSET;
    time_t t = (time_t)local;
    struct tm tm;
    int rc;
    dtm_conf_path(c, c->backup_dir, dir, sizeof(dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        dtm_logf(DTM_LOG_ERROR, "scheduled backup failed: cannot create its directory",
                 "\"error\":\"%s\"", strerror(errno));
        return false;
    }
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
    snprintf(path, sizeof(path), "%s/dtm-%s.dtmb", dir, stamp);
    /* one compression thread: the server keeps its cores for the requests */
    rc = dtm_backup_create(
        c, path,
        &(struct dtm_backup_opts){
            .threads = 1, .actor_kind = "server", .actor = "dtm serve", .cancel = &j->cancel},
        &res, err, sizeof(err));
    if (rc) {
        struct dtm_buf f;
        dtm_buf_init(&f, 4096);
        dtm_buf_addc(&f, "\"error\":");
        dtm_buf_json_strc(&f, err);
        dtm_log(DTM_LOG_ERROR, "scheduled backup failed", f.err ? NULL : f.p);
        dtm_buf_free(&f);
    } else {
        dtm_logf(DTM_LOG_INFO, "scheduled backup made",
                 "\"file\":\"dtm-%s.dtmb\",\"bytes\":%lld,\"records\":%lld,\"seconds\":%.2f", stamp,
                 (long long)res.file_bytes, (long long)res.m->records, res.seconds);
        prune(dir, c->backup_keep);
    }
    dtm_backup_result_free(&res);
    return rc == DTM_OK;
}

static int64_t run(struct dtm_periodic *clock, void *arg)
{
    struct dtm_backup_job *j = arg;
    struct dtm_conf *c = j->c;
    int64_t hours, due, last, wait = WAKE_S * US;
    (void)clock;
    memcpy(c, *j->conf, sizeof(*c));
    hours = c->backup_schedule_hours;
    if (hours > 0) {
        last = last_ok(c);
        due = last + hours * 3600 * US;
        if (due < j->retry_at) /* the last attempt failed: not again at once */
            due = j->retry_at;
        if (dtm_now_us() >= due) {
            if (claim_round(c, last) && !backup_now(j, c))
                j->retry_at = dtm_now_us() + DTM_MIN(hours * 3600, RETRY_S) * US;
        } else if (due - dtm_now_us() + US < wait) {
            wait = due - dtm_now_us() + US;
        }
    }
    return wait;
}

int dtm_backup_job_start(const struct dtm_conf *const *conf, struct dtm_backup_job **out, char *err,
                         size_t errsz)
{
    struct dtm_backup_job *j = calloc(1, sizeof(*j));
    int rc;
    if (!j || !(j->c = malloc(sizeof(*j->c)))) {
        free(j);
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    j->conf = conf;
    if ((rc = dtm_periodic_start("backup", FIRST_CHECK_S * US, run, j, &j->clock, err, errsz))) {
        free(j->c);
        free(j);
        return rc;
    }
    *out = j;
    return DTM_OK;
}

void dtm_backup_job_stop(struct dtm_backup_job *j)
{
    if (!j)
        return;
    atomic_store(&j->cancel, true); /* a backup under way stops at its next block */
    dtm_periodic_stop(j->clock);
    free(j->c);
    free(j);
}
