/* cli/init.c — `dtm init`: a new data dir with its config, master key (0600), self-signed TLS
 * certificate, database and first admin account (random password printed once); with --demo,
 * the demo picture of CONTRACT §9 (demo/demo.c writes it, the batch pipeline imports it). */
#include "batch/batch.h"
#include "cli/cli.h"
#include "demo/demo.h"
#include "gate/gate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    bool empty = true;
    if (!d)
        return false;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = false;
            break;
        }
    closedir(d);
    return empty;
}

static int write_file(const char *path, const char *text, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    int ok;
    if (fd < 0)
        return -1;
    ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

/* Registers the demo systems, imports the generated files through the batch pipeline (rows of
 * the data-quality system are rejected or counted as duplicates there, as real ones would be)
 * and sets each system's last-seen time to its last record. */
static int load_demo(const char *data_dir, uint64_t seed, size_t records, int64_t end_day,
                     struct dtm_cli_out *out)
{
    struct dtm_local_import li;
    struct dtm_demo_out d = {0};
    struct dtm_demo_opts o = {.seed = seed, .transactions = records, .now_us = dtm_now_us()};
    char dir[DTM_PATH_MAX], err[512], v[32];
    int64_t sum[5] = {0}, t0 = dtm_mono_us();
    int rc = DTM_EXIT_FAIL;

    o.end_day = (o.now_us / 1000000 + DTM_TZ_OFFSET) / 86400;
    if (end_day != INT64_MIN && end_day != o.end_day) { /* a fixed past: the whole last day */
        o.end_day = end_day;
        o.now_us = dtm_day_start(end_day + 1) - 1;
    }
    if ((rc = dtm_local_import_open(data_dir, &li)))
        goto out;
    rc = DTM_EXIT_FAIL;
    dtm_conf_path(&li.conf, "demo", dir, sizeof(dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        dtm_cli_error("cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    fprintf(stderr, "demo: generating %zu transactions over 90 days (seed %llu)\n",
            records ? records : (size_t)1000000, (unsigned long long)seed);
    if (dtm_demo_generate(dir, &o, &d, err, sizeof(err))) {
        dtm_cli_error("cannot generate the demo data: %s", err);
        goto out;
    }
    for (size_t i = 0; i < d.nsystems; i++) {
        const struct dtm_demo_system *ds = &d.systems[i];
        struct dtm_system sys = {.created_at = o.now_us - 120LL * 86400 * 1000000};
        snprintf(sys.code, sizeof(sys.code), "%s", ds->code);
        snprintf(sys.name, sizeof(sys.name), "%s", ds->name);
        snprintf(sys.org, sizeof(sys.org), "%s", ds->org);
        snprintf(sys.role, sizeof(sys.role), "%s", ds->role);
        snprintf(sys.parent, sizeof(sys.parent), "%s", ds->parent);
        if (li.store->ops->system_add(li.store, &sys)) {
            dtm_cli_error("cannot register the demo system %s", ds->code);
            goto out;
        }
    }
    for (size_t i = 0; i < d.nfiles; i++) {
        struct dtm_batch b;
        struct dtm_local_file f = {.dataset = d.datasets[i], .path = d.files[i], .rejected = ""};
        fprintf(stderr, "demo: importing %s (%zu rows)\n", d.datasets[i], d.records[i]);
        if (dtm_local_import_file(&li, &f, &b))
            goto out;
        int64_t add[5] = {b.total, b.accepted, b.duplicates, b.updated, b.rejected};
        for (int k = 0; k < 5; k++)
            sum[k] += add[k];
        unlink(d.files[i]);
    }
    for (size_t i = 0; i < d.nsystems; i++)
        if (d.systems[i].last_seen_us &&
            li.store->ops->system_touch(li.store, d.systems[i].code, d.systems[i].last_seen_us)) {
            dtm_cli_error("cannot set the last-seen time of %s", d.systems[i].code);
            goto out;
        }
    rmdir(dir);
    snprintf(v, sizeof(v), "%zu", d.nsystems);
    dtm_cli_out_add(out, "demo_systems", v);
    snprintf(v, sizeof(v), "%lld", (long long)sum[1]);
    dtm_cli_out_add(out, "demo_records", v);
    snprintf(v, sizeof(v), "%lld", (long long)sum[4]);
    dtm_cli_out_add(out, "demo_rejected", v);
    fprintf(stderr, "demo: %lld rows, %lld stored, %lld duplicates, %lld rejected in %.1f s\n",
            (long long)sum[0], (long long)sum[1], (long long)sum[2], (long long)sum[4],
            (double)(dtm_mono_us() - t0) / 1e6);
    rc = DTM_EXIT_OK;
out:
    dtm_demo_free(&d);
    dtm_local_import_close(&li);
    return rc;
}

int dtm_cmd_init(int argc, char **argv)
{
    static const char usage[] =
        "dtm init [--data-dir DIR] [--store-dsn DSN] [--demo [--seed N] [--demo-records N] "
        "[--demo-end YYYY-MM-DD]] [--json]";
    bool demo = false;
    const char *seed_s = NULL, *records_s = NULL, *end_s = NULL, *dsn = NULL;
    int64_t seed = 1, records = 0, end_day = INT64_MIN;
    struct dtm_cli_opt opts[] = {{"demo", NULL, &demo},
                                 {"seed", &seed_s, NULL},
                                 {"demo-records", &records_s, NULL},
                                 {"demo-end", &end_s, NULL},
                                 {"store-dsn", &dsn, NULL}};
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st = NULL;
    struct dtm_buf sample;
    struct dtm_cli_out out = {0};
    char path[DTM_PATH_MAX], kpath[DTM_PATH_MAX], err[512], password[24], hash[256];
    struct stat sb;
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if ((seed_s || records_s || end_s) && !demo) {
        dtm_cli_error("--seed, --demo-records and --demo-end go with --demo\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if ((seed_s && (dtm_str_to_i64(dtm_str_c(seed_s), &seed) || seed < 0)) ||
        (records_s && (dtm_str_to_i64(dtm_str_c(records_s), &records) || records < 1000 ||
                       records > 100000000))) {
        dtm_cli_error("--seed takes a number >= 0 and --demo-records one from 1000 to "
                      "100000000\nusage: %s",
                      usage);
        return DTM_EXIT_USAGE;
    }
    if (end_s && (dtm_date_parse(dtm_str_c(end_s), &end_day) ||
                  end_day > (dtm_now_us() / 1000000 + DTM_TZ_OFFSET) / 86400)) {
        dtm_cli_error("--demo-end takes a date (YYYY-MM-DD) not after today\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    dtm_conf_defaults(&c, com.data_dir);
    /* --store-dsn: the store is a PostgreSQL database (CONTRACT §8), reachable before anything
     * is written */
    if (dsn) {
        if (!*dsn || strlen(dsn) >= sizeof(c.store_dsn) || strpbrk(dsn, "\r\n")) {
            dtm_cli_error("--store-dsn takes a libpq connection string on one line\nusage: %s",
                          usage);
            return DTM_EXIT_USAGE;
        }
        /* it becomes the line "dsn = DSN" of dtm.conf */
        if (strlen(dsn) + 6 > DTM_CONF_LINE_MAX) {
            dtm_cli_error("--store-dsn is longer than %d characters (a line of dtm.conf): use "
                          "shorter paths, or PGSSLROOTCERT, PGSSLCERT and PGSSLKEY for init and "
                          "[store] sslrootcert, sslcert and sslkey after it",
                          DTM_CONF_LINE_MAX - 6);
            return DTM_EXIT_USAGE;
        }
        snprintf(c.backend, sizeof(c.backend), "postgresql");
        snprintf(c.store_dsn, sizeof(c.store_dsn), "%s", dsn);
        if (dtm_store_open(&c, &st, err, sizeof(err))) {
            dtm_cli_error("%s", err);
            return DTM_EXIT_FAIL;
        }
        st->ops->close(st);
        st = NULL;
    }
    if (stat(com.data_dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode) || !dir_empty(com.data_dir)) {
            dtm_cli_error("%s already exists and is not empty; refusing to overwrite it",
                          com.data_dir);
            return DTM_EXIT_FAIL;
        }
    } else if (mkdir(com.data_dir, 0700) != 0) {
        dtm_cli_error("cannot create %s: %s", com.data_dir, strerror(errno));
        return DTM_EXIT_FAIL;
    }
    chmod(com.data_dir, 0700);

    dtm_buf_init(&sample, 1 << 20);
    dtm_conf_sample(&sample);
    if (dsn) /* a later [store] section overrides the defaults shown above */
        dtm_buf_printf(&sample,
                       "\n# chosen by dtm init --store-dsn\n[store]\nbackend = postgresql\n"
                       "dsn = %s\n",
                       dsn);
    dtm_conf_path(&c, "dtm.conf", path, sizeof(path));
    if (sample.err || write_file(path, sample.p, sample.n, 0640)) {
        dtm_cli_error("cannot write %s: %s", path, strerror(errno));
        dtm_buf_free(&sample);
        return DTM_EXIT_FAIL;
    }
    dtm_buf_free(&sample);

    dtm_conf_path(&c, "master.key", path, sizeof(path));
    if (dtm_keyring_create(path, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        return DTM_EXIT_FAIL;
    }
    dtm_conf_path(&c, c.tls_cert, path, sizeof(path));
    dtm_conf_path(&c, c.tls_key, kpath, sizeof(kpath));
    if (dtm_tls_self_signed(path, kpath, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        return DTM_EXIT_FAIL;
    }
    if (dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    /* S3: the first account opens the audit trail (user.created, in the same transaction) */
    if (dtm_password_random(password, sizeof(password), 20) ||
        dtm_password_hash(password, hash, sizeof(hash)) || st->ops->begin(st) ||
        st->ops->user_add(st, "admin", "admin", hash, dtm_now_us()) ||
        dtm_cli_audit(&c, st, "user.created", "admin", "{\"role\":\"admin\"}") ||
        st->ops->commit(st)) {
        st->ops->rollback(st);
        dtm_cli_error("cannot create the admin account");
        st->ops->close(st);
        return DTM_EXIT_FAIL;
    }
    st->ops->close(st);
    dtm_cli_out_add(&out, "data_dir", com.data_dir);
    dtm_cli_out_add(&out, "admin_username", "admin");
    dtm_cli_out_add(&out, "admin_password", password);
    /* a failed demo still prints the admin account: the data dir exists and is usable */
    rc = demo ? load_demo(com.data_dir, (uint64_t)seed, (size_t)records, end_day, &out)
              : DTM_EXIT_OK;
    dtm_cli_out_print(&out, com.json);
    memset(password, 0, sizeof(password));
    memset(&out, 0, sizeof(out));
    return rc;
}
