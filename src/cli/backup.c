/* cli/backup.c — `dtm backup -o FILE`, `dtm backup verify FILE`, `dtm restore FILE` and
 * `dtm drill` (CONTRACT §1; issue 10). The work is in backup/; this file reads the options,
 * prints progress on a terminal and a summary, and runs the recovery drill: back up the live
 * data dir (a server may be running on it), verify, restore into a scratch dir, start a second
 * `dtm serve` on it (this same binary) on a free loopback port, and compare what its API
 * answers with the snapshot's manifest — the yearly drill of the regulation, automated. */
#include "backup/backup.h"
#include "audit/audit.h"
#include "cli/cli.h"

#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* Progress lines (on stderr) only for a person at a terminal: not when the output goes to a
 * file or a pipe (scripts, cron). */
static bool on_terminal(void)
{
    return isatty(1) && isatty(2);
}

static void print_backup(const char *what, const char *file, const struct dtm_backup_result *r,
                         bool json)
{
    const struct dtm_backup_manifest *m = r->m;
    double mb = (double)m->content_bytes / 1048576.0;
    if (json) {
        struct dtm_buf b;
        dtm_buf_init(&b, 1 << 20);
        dtm_buf_printf(&b, "{\"%s\":", what);
        dtm_buf_json_strc(&b, file);
        dtm_buf_printf(&b,
                       ",\"created\":\"%s\",\"dtm_version\":\"%s\",\"installation\":\"%s\","
                       "\"kek_id\":\"%s\",\"records\":%lld,\"datasets\":{",
                       m->created, m->dtm_version, m->installation, m->kek_id,
                       (long long)m->records);
        for (size_t i = 0; i < m->ndatasets; i++) {
            if (i)
                dtm_buf_addch(&b, ',');
            dtm_buf_json_strc(&b, m->dataset[i].code);
            dtm_buf_printf(&b, ":%lld", (long long)m->dataset[i].records);
        }
        dtm_buf_printf(&b,
                       "},\"last_receipt_seq\":%lld,\"cubes_applied_seq\":%lld,\"audit_seq\":%lld,"
                       "\"files\":[",
                       (long long)m->last_receipt_seq, (long long)m->cubes_applied_seq,
                       (long long)m->audit_seq);
        for (size_t i = 0; i < m->nfiles; i++) {
            dtm_buf_addc(&b, i ? ",{\"name\":" : "{\"name\":");
            dtm_buf_json_strc(&b, m->file[i].name);
            dtm_buf_printf(&b, ",\"size\":%lld,\"sha256\":\"%s\"}", (long long)m->file[i].size,
                           m->file[i].sha256);
        }
        dtm_buf_printf(&b,
                       "],\"content_bytes\":%lld,\"content_sha256\":\"%s\",\"file_bytes\":%lld,"
                       "\"seconds\":%.3f}\n",
                       (long long)m->content_bytes, m->content_sha256, (long long)r->file_bytes,
                       r->seconds);
        fputs(b.err ? "{}\n" : b.p, stdout);
        dtm_buf_free(&b);
    } else {
        printf("%s: %s — %lld records in %zu datasets, %zu files, %.1f MB of content in a "
               "%.1f MB file, %.2f s (%.0f MB/s), made %s\n",
               what, file, (long long)m->records, m->ndatasets, m->nfiles, mb,
               (double)r->file_bytes / 1048576.0, r->seconds,
               r->seconds > 0 ? mb / r->seconds : 0.0, m->created);
    }
    fflush(stdout);
}

static int verify_cmd(int argc, char **argv)
{
    static const char usage[] =
        "dtm backup verify FILE [--master-key PATH] [--data-dir DIR] [--json]";
    const char *master_key = NULL, *pos[1];
    struct dtm_cli_opt opts[] = {{"master-key", &master_key, NULL}};
    struct dtm_cli_common com;
    struct dtm_backup_result res;
    char key[DTM_PATH_MAX], err[1024];
    size_t npos;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 1, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (npos != 1) {
        dtm_cli_error("name the backup file to verify\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (!master_key) {
        snprintf(key, sizeof(key), "%s/master.key", com.data_dir);
        master_key = key;
    }
    rc = dtm_backup_verify(pos[0], master_key, on_terminal(), &res, err, sizeof(err));
    if (rc)
        dtm_cli_error("%s", err);
    else
        print_backup("verified", pos[0], &res, com.json);
    dtm_backup_result_free(&res);
    return rc ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}

int dtm_cmd_backup(int argc, char **argv)
{
    static const char usage[] =
        "dtm backup -o FILE [--data-dir DIR] [--json]\n"
        "       dtm backup verify FILE [--master-key PATH] [--data-dir DIR] [--json]";
    const char *output = NULL, *pos[2];
    struct dtm_cli_opt opts[] = {{"output", &output, NULL}};
    struct dtm_cli_common com;
    struct dtm_backup_result res;
    struct dtm_conf c;
    char err[1024], user[128];
    size_t npos;
    int rc;
    if (argc > 0 && !strcmp(argv[0], "verify"))
        return verify_cmd(argc - 1, argv + 1);
    if ((rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 2, &npos, usage)))
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (npos == 2 && !strcmp(pos[0], "-o"))
        output = pos[1];
    else if (npos)
        output = NULL;
    if (!output || !*output) {
        dtm_cli_error("name the backup file with -o FILE\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c))
        return DTM_EXIT_FAIL;
    {
        /* the store at the current schema (backup_runs) before the snapshot */
        struct dtm_store *st;
        if (dtm_cli_open_store(&c, &st))
            return DTM_EXIT_FAIL;
        st->ops->close(st);
    }
    dtm_audit_os_user(user, sizeof(user));
    rc = dtm_backup_create(
        &c, output,
        &(struct dtm_backup_opts){.progress = on_terminal(), .actor_kind = "cli", .actor = user},
        &res, err, sizeof(err));
    if (rc)
        dtm_cli_error("the backup failed: %s", err);
    else
        print_backup("backup", output, &res, com.json);
    dtm_backup_result_free(&res);
    return rc ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}

int dtm_cmd_restore(int argc, char **argv)
{
    static const char usage[] = "dtm restore FILE --data-dir NEWDIR [--master-key PATH] "
                                "[--store-dsn DSN] [--json]";
    const char *master_key = NULL, *store_dsn = NULL, *pos[1];
    /* --store-dsn: an empty PostgreSQL database the backup of a PostgreSQL store goes into */
    struct dtm_cli_opt opts[] = {{"master-key", &master_key, NULL},
                                 {"store-dsn", &store_dsn, NULL}};
    struct dtm_cli_common com;
    struct dtm_backup_result res;
    char err[1024];
    size_t npos;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 1, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (npos != 1) {
        dtm_cli_error("name the backup file to restore\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (!master_key) {
        char key[DTM_PATH_MAX + 16];
        snprintf(key, sizeof(key), "%s/master.key", com.data_dir);
        if (access(key, F_OK) != 0) {
            dtm_cli_error("restoring needs the master key the backup was made under: give "
                          "--master-key PATH (or put it alone in %s as master.key)\nusage: %s",
                          com.data_dir, usage);
            return DTM_EXIT_USAGE;
        }
    }
    if (store_dsn && (!*store_dsn || strpbrk(store_dsn, "\r\n"))) {
        dtm_cli_error("--store-dsn takes a libpq connection string on one line\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    rc = dtm_backup_restore_to(pos[0], master_key, com.data_dir, store_dsn, on_terminal(), &res,
                               err, sizeof(err));
    if (rc)
        dtm_cli_error("%s", err);
    else
        print_backup("restored", com.data_dir, &res, com.json);
    dtm_backup_result_free(&res);
    return rc ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}

/* ---- the recovery drill */

struct body {
    char *p;
    size_t n;
};

static size_t body_write(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct body *b = ctx;
    size_t n = size * nmemb;
    char *q;
    if (b->n + n > (16u << 20) || !(q = realloc(b->p, b->n + n + 1)))
        return 0;
    memcpy(q + b->n, p, n);
    b->p = q;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* GET url with an optional API key: the status, the body in *out (caller frees). */
static long http_get(const char *url, const char *api_key, struct body *out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hd = NULL;
    char line[256];
    long status = 0;
    memset(out, 0, sizeof(*out));
    if (!h)
        return 0;
    if (api_key) {
        snprintf(line, sizeof(line), "X-API-Key: %s", api_key);
        hd = curl_slist_append(hd, line);
    }
    hd = curl_slist_append(hd, "Accept-Language: en");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return status;
}

/* Runs this binary with args, stdout into out (at most outsz - 1 bytes). The exit status. */
static int run_self(char *const args[], char *out, size_t outsz, const char *log)
{
    int pipefd[2], status = -1;
    size_t n = 0;
    pid_t pid;
    if (pipe(pipefd) != 0)
        return -1;
    if ((pid = fork()) < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        dup2(pipefd[1], 1);
        if (fd >= 0)
            dup2(fd, 2);
        close(pipefd[0]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(pipefd[1]);
    for (;;) {
        ssize_t r = read(pipefd[0], out + n, outsz - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == outsz - 1)
            break;
    }
    out[n] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

struct drill {
    const char *store_dsn; /* PostgreSQL: the scratch database the backup is restored into */
    struct dtm_buf report; /* JSON */
    bool pass;
    char failure[512];
};

static void drill_fail(struct drill *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void drill_fail(struct drill *d, const char *fmt, ...)
{
    va_list ap;
    if (!d->pass)
        return;
    d->pass = false;
    va_start(ap, fmt);
    vsnprintf(d->failure, sizeof(d->failure), fmt, ap);
    va_end(ap);
}

/* The count of a dataset's records as the second server's API answers it; -1 when it cannot. */
static int64_t api_count(const char *base, const char *key, const char *dataset)
{
    char url[512];
    struct body b;
    cJSON *j, *rows, *row, *cell;
    int64_t n = -1;
    snprintf(url, sizeof(url), "%s/api/v1/stats/%s?metrics=count", base, dataset);
    if (http_get(url, key, &b) == 200 && (j = cJSON_Parse(b.p))) {
        rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
        if (cJSON_IsArray(rows) && cJSON_GetArraySize(rows) == 0)
            n = 0;
        else if (cJSON_IsArray(rows) && (row = cJSON_GetArrayItem(rows, 0)) &&
                 (cell = cJSON_GetArrayItem(row, cJSON_GetArraySize(row) - 1))) {
            if (cJSON_IsNumber(cell))
                n = (int64_t)cell->valuedouble;
            else if (cJSON_IsString(cell))
                n = strtoll(cell->valuestring, NULL, 10);
        }
        cJSON_Delete(j);
    }
    free(b.p);
    return n;
}

/* A statistic from the second server: the transactions by status with their count and the sum
 * of amount, as a canonical text ("status=count/sum;…", rows in the order the API gives them)
 * and the total count; plan "scan" reads (and opens) every record instead of the rollups. */
static int api_by_status(const char *base, const char *key, const char *plan, struct dtm_buf *text,
                         int64_t *total)
{
    char url[512];
    struct body b;
    cJSON *j, *rows, *row;
    int rc = DTM_EIO;
    *total = 0;
    snprintf(url, sizeof(url),
             "%s/api/v1/stats/transactions?metrics=count,sum:amount&group_by=status&plan=%s", base,
             plan);
    if (http_get(url, key, &b) == 200 && (j = cJSON_Parse(b.p))) {
        rows = cJSON_GetObjectItemCaseSensitive(j, "rows");
        if (cJSON_IsArray(rows)) {
            rc = DTM_OK;
            cJSON_ArrayForEach(row, rows)
            {
                cJSON *k = cJSON_GetArrayItem(row, 0), *n = cJSON_GetArrayItem(row, 1),
                      *sum = cJSON_GetArrayItem(row, 2);
                char *ns = cJSON_PrintUnformatted(n), *ss = cJSON_PrintUnformatted(sum);
                *total += cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
                dtm_buf_printf(text, "%s=%s/%s;", cJSON_IsString(k) ? k->valuestring : "null",
                               ns ? ns : "?", ss ? ss : "?");
                free(ns);
                free(ss);
            }
        }
        cJSON_Delete(j);
    }
    free(b.p);
    return rc;
}

/* The same statistic from the rollups and from the records must agree, and add up to the
 * snapshot's count. */
static void compare_stats(struct drill *d, const char *base, const char *key, int64_t snapshot)
{
    struct dtm_buf cube, scan;
    int64_t n_cube = 0, n_scan = 0;
    int64_t t0 = dtm_now_us();
    dtm_buf_init(&cube, 1 << 20);
    dtm_buf_init(&scan, 1 << 20);
    if (api_by_status(base, key, "auto", &cube, &n_cube) ||
        api_by_status(base, key, "scan", &scan, &n_scan)) {
        drill_fail(d, "the second server did not answer the statistics of transactions");
    } else {
        dtm_buf_addc(&d->report, ",\"transactions_by_status\":");
        dtm_buf_json_strc(&d->report, cube.n ? cube.p : "");
        dtm_buf_printf(&d->report, ",\"transactions_scan_s\":%.3f,\"statistics_same\":%s",
                       (double)(dtm_now_us() - t0) / 1e6,
                       cube.n == scan.n && (!cube.n || !memcmp(cube.p, scan.p, cube.n)) ? "true"
                                                                                        : "false");
        if (cube.n != scan.n || (cube.n && memcmp(cube.p, scan.p, cube.n)))
            drill_fail(d, "transactions by status: the rollups say %s, the records %s",
                       cube.n ? cube.p : "nothing", scan.n ? scan.p : "nothing");
        else if (n_cube != snapshot)
            drill_fail(d, "transactions by status add up to %lld, the snapshot holds %lld",
                       (long long)n_cube, (long long)snapshot);
    }
    dtm_buf_free(&cube);
    dtm_buf_free(&scan);
}

/* The second server must not act on the world as the restored configuration would (alerts to
 * the real channels, scheduled backups) nor change what is compared (connection logs of the
 * drill's own calls): an overlay of dtm.conf for it. */
static const char drill_conf[] = "[backup]\nschedule_hours = 0\n"
                                 "[connlog]\nenabled = false\n"
                                 "[alert]\nchannels =\nchannels_info =\nchannels_warning =\n"
                                 "channels_critical =\n"
                                 "[warning]\nenabled = false\n";

/* Starts `dtm serve` on the restored dir with the overlay conf; its pid, or -1. */
static pid_t start_server(const char *dir, int port, const char *conf, const char *log)
{
    char http[64], ddir[DTM_PATH_MAX + 64], cfile[DTM_PATH_MAX + 64];
    pid_t pid;
    snprintf(http, sizeof(http), "127.0.0.1:%d", port);
    snprintf(ddir, sizeof(ddir), "%s", dir);
    snprintf(cfile, sizeof(cfile), "%s", conf);
    if ((pid = fork()) == 0) {
        char *args[] = {"dtm",    "serve", "--data-dir", ddir,  "--config", cfile,
                        "--http", http,    "--https",    "off", NULL};
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600),
            nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (nul >= 0)
            dup2(nul, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv("/proc/self/exe", args);
        _exit(127);
    }
    return pid;
}

static double secs(int64_t t0)
{
    return (double)(dtm_now_us() - t0) / 1e6;
}

/* The drill's steps; fills d->report. */
static void drill_run(const struct dtm_conf *c, const char *scratch, const char *master_key,
                      struct drill *d)
{
    char file[DTM_PATH_MAX + 32], dir[DTM_PATH_MAX + 32], key[DTM_PATH_MAX], log[DTM_PATH_MAX + 32];
    char conf[DTM_PATH_MAX + 32];
    char err[1024], base[64], out[4096], user[128], code[32];
    struct dtm_backup_result bk = {0}, vr = {0}, rs = {0};
    struct dtm_buf *rep = &d->report;
    const char *api_key = NULL;
    int64_t t0;
    pid_t pid = -1;
    int port;
    bool tty = on_terminal();

    snprintf(file, sizeof(file), "%s/drill.dtmb", scratch);
    snprintf(dir, sizeof(dir), "%s/data", scratch);
    snprintf(log, sizeof(log), "%s/serve.log", scratch);
    snprintf(conf, sizeof(conf), "%s/drill.conf", scratch);
    if (master_key) /* the copy kept apart: the drill proves it opens the backups */
        snprintf(key, sizeof(key), "%s", master_key);
    else
        dtm_conf_path(c, "master.key", key, sizeof(key));
    dtm_audit_os_user(user, sizeof(user));

    /* 1. backup of the live data dir */
    t0 = dtm_now_us();
    if (dtm_backup_create(c, file,
                          &(struct dtm_backup_opts){
                              .progress = tty, .actor_kind = "cli", .actor = user, .drill = true},
                          &bk, err, sizeof(err))) {
        drill_fail(d, "backup: %s", err);
        goto out;
    }
    dtm_buf_printf(rep,
                   ",\"backup_s\":%.3f,\"backup_bytes\":%lld,\"records\":%lld,"
                   "\"snapshot\":\"%s\"",
                   secs(t0), (long long)bk.file_bytes, (long long)bk.m->records, bk.m->created);
    /* 2. verify */
    t0 = dtm_now_us();
    if (dtm_backup_verify(file, key, tty, &vr, err, sizeof(err))) {
        drill_fail(d, "verify: %s", err);
        goto out;
    }
    dtm_buf_printf(rep, ",\"verify_s\":%.3f", secs(t0));
    /* 3. restore into the scratch dir */
    t0 = dtm_now_us();
    if (dtm_backup_restore_to(file, key, dir, d->store_dsn, tty, &rs, err, sizeof(err))) {
        drill_fail(d, "restore: %s", err);
        goto out;
    }
    dtm_buf_printf(rep, ",\"restore_s\":%.3f", secs(t0));
    /* 4. a reader on the restored data: a consumer granted every dataset */
    snprintf(code, sizeof(code), "DRILL%04X", (unsigned)(dtm_now_us() & 0xffff));
    {
        char *args[] = {"dtm",      "system", "add",    "--data-dir",     dir,
                        "--code",   code,     "--name", "recovery drill", "--role",
                        "consumer", "--json", NULL};
        cJSON *j;
        if (run_self(args, out, sizeof(out), log) != 0 || !(j = cJSON_Parse(out))) {
            drill_fail(d, "cannot register a reader on the restored data dir (see %s)", log);
            goto out;
        }
        {
            cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "api_key");
            static char keybuf[256];
            snprintf(keybuf, sizeof(keybuf), "%s", cJSON_IsString(k) ? k->valuestring : "");
            api_key = keybuf;
        }
        cJSON_Delete(j);
    }
    for (size_t i = 0; i < bk.m->ndatasets; i++) {
        char ds[DTM_CODE_MAX];
        char *args[] = {"dtm",      "grant", "add",       "--data-dir", dir,
                        "--system", code,    "--dataset", ds,           NULL};
        snprintf(ds, sizeof(ds), "%s", bk.m->dataset[i].code);
        if (run_self(args, out, sizeof(out), log) != 0) {
            drill_fail(d, "cannot grant dataset %s to the drill's reader (see %s)", ds, log);
            goto out;
        }
    }
    /* 5. a second server on the restored data dir */
    t0 = dtm_now_us();
    {
        FILE *f = fopen(conf, "w");
        if (!f || fputs(drill_conf, f) < 0 || fclose(f) != 0) {
            drill_fail(d, "cannot write %s", conf);
            goto out;
        }
    }
    if (!(port = free_port()) || (pid = start_server(dir, port, conf, log)) < 0) {
        drill_fail(d, "cannot start a second server");
        goto out;
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    for (;;) {
        struct body b;
        char url[128];
        int status;
        long code_ = 0;
        snprintf(url, sizeof(url), "%s/healthz", base);
        code_ = http_get(url, NULL, &b);
        free(b.p);
        if (code_ == 200)
            break;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pid = -1;
            drill_fail(d, "the second server stopped before it was ready (see %s)", log);
            goto out;
        }
        if (secs(t0) > 600) {
            drill_fail(d, "the second server was not ready after 600 s (see %s)", log);
            goto out;
        }
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
    dtm_buf_printf(rep, ",\"serve_ready_s\":%.3f,\"port\":%d", secs(t0), port);
    /* 6. compare: every dataset's count as the API answers it with the snapshot's */
    t0 = dtm_now_us();
    dtm_buf_addc(rep, ",\"datasets\":[");
    for (size_t i = 0; i < bk.m->ndatasets; i++) {
        int64_t n = api_count(base, api_key, bk.m->dataset[i].code);
        bool same = n == bk.m->dataset[i].records;
        if (i)
            dtm_buf_addch(rep, ',');
        dtm_buf_addc(rep, "{\"dataset\":");
        dtm_buf_json_strc(rep, bk.m->dataset[i].code);
        dtm_buf_printf(rep, ",\"snapshot\":%lld,\"restored\":%lld,\"same\":%s}",
                       (long long)bk.m->dataset[i].records, (long long)n, same ? "true" : "false");
        if (!same)
            drill_fail(d,
                       "dataset %s: %lld records in the snapshot, the restored server counts %lld",
                       bk.m->dataset[i].code, (long long)bk.m->dataset[i].records, (long long)n);
    }
    dtm_buf_addch(rep, ']');
    for (size_t i = 0; i < bk.m->ndatasets; i++)
        if (!strcmp(bk.m->dataset[i].code, "transactions"))
            compare_stats(d, base, api_key, bk.m->dataset[i].records);
    dtm_buf_printf(rep, ",\"compare_s\":%.3f", secs(t0));
out:
    if (pid > 0) {
        int status;
        kill(pid, SIGTERM);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    dtm_backup_result_free(&bk);
    dtm_backup_result_free(&vr);
    dtm_backup_result_free(&rs);
}

/* Removes the drill's scratch dir (ours: made by mkdtemp). */
static void remove_scratch(const char *dir)
{
    char *args[] = {"rm", "-rf", "--", (char *)dir, NULL};
    pid_t pid = fork();
    int status;
    if (pid == 0) {
        execv("/bin/rm", args);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The report for people: the timings, every dataset compared, the verdict. */
static void print_drill(const char *report)
{
    cJSON *j = cJSON_Parse(report), *ds, *it, *res, *why;
    if (!j) {
        fputs(report, stdout);
        return;
    }
    printf("recovery drill of %s\n", cJSON_GetStringValue(cJSON_GetObjectItem(j, "data_dir")));
    if (num(j, "backup_s") >= 0)
        printf("  backup      %8.2f s  %.1f MB, %.0f records, snapshot %s\n", num(j, "backup_s"),
               num(j, "backup_bytes") / 1048576.0, num(j, "records"),
               cJSON_GetStringValue(cJSON_GetObjectItem(j, "snapshot")));
    if (num(j, "verify_s") >= 0)
        printf("  verify      %8.2f s\n", num(j, "verify_s"));
    if (num(j, "restore_s") >= 0)
        printf("  restore     %8.2f s\n", num(j, "restore_s"));
    if (num(j, "serve_ready_s") >= 0)
        printf("  serve       %8.2f s  second server ready on port %.0f\n", num(j, "serve_ready_s"),
               num(j, "port"));
    if (num(j, "compare_s") >= 0)
        printf("  compare     %8.2f s\n", num(j, "compare_s"));
    ds = cJSON_GetObjectItem(j, "datasets");
    cJSON_ArrayForEach(it, ds)
    {
        printf("    %-18s snapshot %10.0f  restored server %10.0f  %s\n",
               cJSON_GetStringValue(cJSON_GetObjectItem(it, "dataset")), num(it, "snapshot"),
               num(it, "restored"),
               cJSON_IsTrue(cJSON_GetObjectItem(it, "same")) ? "same" : "DIFFERENT");
    }
    if (cJSON_IsString(cJSON_GetObjectItem(j, "transactions_by_status")))
        printf("    transactions by status, count/sum of amount (rollups %s records): %s\n",
               cJSON_IsTrue(cJSON_GetObjectItem(j, "statistics_same")) ? "=" : "DIFFER FROM",
               cJSON_GetStringValue(cJSON_GetObjectItem(j, "transactions_by_status")));
    res = cJSON_GetObjectItem(j, "result");
    why = cJSON_GetObjectItem(j, "failure");
    printf("  total       %8.2f s\n%s%s%s\n", num(j, "total_s"), cJSON_GetStringValue(res),
           why ? ": " : "", why ? cJSON_GetStringValue(why) : "");
    cJSON_Delete(j);
}

int dtm_cmd_drill(int argc, char **argv)
{
    static const char usage[] = "dtm drill [--data-dir DIR] [--master-key PATH] [--report FILE] "
                                "[--scratch DIR] [--store-dsn DSN] [--keep] [--json]";
    const char *report = NULL, *scratch_parent = NULL, *master_key = NULL, *store_dsn = NULL,
               *pos[1];
    bool keep = false;
    struct dtm_cli_opt opts[] = {{"report", &report, NULL},
                                 {"scratch", &scratch_parent, NULL},
                                 {"master-key", &master_key, NULL},
                                 {"store-dsn", &store_dsn, NULL},
                                 {"keep", NULL, &keep}};
    struct dtm_cli_common com;
    struct dtm_conf c;
    struct drill d = {.pass = true};
    char scratch[DTM_PATH_MAX], now[40];
    int64_t t0 = dtm_now_us();
    size_t npos;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c))
        return DTM_EXIT_FAIL;
    /* PostgreSQL: the backup is restored into a scratch database the operator provides (dtm
     * does not create databases: it may not have the right to) */
    if (strcmp(c.backend, "postgresql") == 0 && (!store_dsn || !*store_dsn)) {
        dtm_cli_error("the store is PostgreSQL: give --store-dsn DSN of an empty scratch "
                      "database to restore the drill's backup into\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (store_dsn && strcmp(c.backend, "postgresql") != 0) {
        dtm_cli_error("--store-dsn is for a PostgreSQL store; this one is %s\nusage: %s", c.backend,
                      usage);
        return DTM_EXIT_USAGE;
    }
    d.store_dsn = store_dsn;
    {
        struct dtm_store *st;
        if (dtm_cli_open_store(&c, &st))
            return DTM_EXIT_FAIL;
        st->ops->close(st);
    }
    if (!scratch_parent)
        scratch_parent = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
    snprintf(scratch, sizeof(scratch), "%s/dtm-drill-XXXXXX", scratch_parent);
    if (!mkdtemp(scratch)) {
        dtm_cli_error("cannot create a scratch directory in %s: %s", scratch_parent,
                      strerror(errno));
        return DTM_EXIT_FAIL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dtm_buf_init(&d.report, 1 << 20);
    dtm_time_fmt(t0, now, sizeof(now));
    dtm_buf_printf(&d.report, "{\"drill\":\"%s\",\"data_dir\":", now);
    dtm_buf_json_strc(&d.report, com.data_dir);
    dtm_buf_addc(&d.report, ",\"scratch\":");
    dtm_buf_json_strc(&d.report, scratch);
    drill_run(&c, scratch, master_key, &d);
    dtm_buf_printf(&d.report, ",\"total_s\":%.3f,\"result\":\"%s\"", secs(t0),
                   d.pass ? "PASS" : "FAIL");
    if (!d.pass) {
        dtm_buf_addc(&d.report, ",\"failure\":");
        dtm_buf_json_strc(&d.report, d.failure);
    }
    dtm_buf_addc(&d.report, "}\n");
    if (!keep)
        remove_scratch(scratch);
    curl_global_cleanup();
    if (d.report.err) {
        dtm_cli_error("the drill's report is too large");
        dtm_buf_free(&d.report);
        return DTM_EXIT_FAIL;
    }
    if (report) {
        FILE *f = fopen(report, "w");
        if (!f || fputs(d.report.p, f) < 0 || fclose(f) != 0) {
            dtm_cli_error("cannot write the report %s: %s", report, strerror(errno));
            dtm_buf_free(&d.report);
            return DTM_EXIT_FAIL;
        }
    }
    if (com.json)
        fputs(d.report.p, stdout);
    else
        print_drill(d.report.p);
    if (!d.pass)
        dtm_cli_error("the recovery drill failed: %s", d.failure);
    dtm_buf_free(&d.report);
    return d.pass ? DTM_EXIT_OK : DTM_EXIT_FAIL;
}
