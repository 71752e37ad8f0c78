/* cli/import.c — `dtm import --dataset D [--system C] FILE…` (CONTRACT §1): batch files through
 * the same pipeline as POST /api/v1/batches, in this process, into the local data dir (a server
 * may be running on it: SQLite serialises the two writers). A progress bar with rows/s and ETA
 * on a terminal, plain lines every few seconds otherwise; final counts; rejected rows to
 * FILE.rejected.csv. A pipe or a .gz file is first copied (gunzipped) to the data dir's spool,
 * since a batch is read through a file mapping. With --url and --key the files go to a remote
 * server instead (cli/remote.c). */
#include "batch/batch.h"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct progress {
    bool tty, quiet;
    int64_t t0, last; /* µs, monotonic */
    int64_t rows0;    /* rows done before this run (a resumed batch) */
    FILE *rejected;   /* opened at the first rejected row */
    char rejected_path[DTM_PATH_MAX];
    const struct dtm_dataset *ds;
    const struct dtm_mapped *input;
    enum dtm_lang lang;
    /* where the search for the raw text of a rejected row resumes (NDJSON, CSV) */
    bool line_based;
    size_t cur_off, cur_line;
    int err;
};

static void human_rate(double v, char *out, size_t n)
{
    if (v >= 1e6)
        snprintf(out, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(out, n, "%.1fk", v / 1e3);
    else
        snprintf(out, n, "%.0f", v);
}

static void show(struct progress *p, const struct dtm_batch *b, bool final)
{
    int64_t now = dtm_mono_us();
    double secs = (double)(now - p->t0) / 1e6, frac = dtm_batch_progress(b);
    double rate = secs > 0 ? (double)(b->total - p->rows0) / secs : 0;
    char r[32], eta[32] = "--:--";
    if (p->quiet || (!final && now - p->last < (p->tty ? 100000 : 5000000)))
        return;
    p->last = now;
    human_rate(rate, r, sizeof(r));
    if (frac > 0.001 && frac < 1) {
        int64_t left = (int64_t)(secs * (1 - frac) / frac);
        snprintf(eta, sizeof(eta), "%lld:%02lld", (long long)(left / 60), (long long)(left % 60));
    }
    if (p->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %5.1f%%  %lld rows  %s rows/s  ETA %s  rejected %lld  ", bar,
                frac * 100, (long long)b->total, r, eta, (long long)b->rejected);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "import: %5.1f%% %lld rows, %s rows/s, ETA %s, rejected %lld\n", frac * 100,
                (long long)b->total, r, eta, (long long)b->rejected);
    }
    fflush(stderr);
}

/* The raw text of line `line` of a line-based input (searching forward from the last one). */
static struct dtm_str raw_line(struct progress *p, size_t line)
{
    const char *s = p->input->p;
    size_t n = p->input->n;
    if (!p->line_based || line < p->cur_line)
        return DTM_STR("");
    while (p->cur_line < line && p->cur_off < n) {
        const char *nl = memchr(s + p->cur_off, '\n', n - p->cur_off);
        p->cur_off = nl ? (size_t)(nl - s) + 1 : n;
        p->cur_line++;
    }
    if (p->cur_off >= n)
        return DTM_STR("");
    const char *nl = memchr(s + p->cur_off, '\n', n - p->cur_off);
    size_t end = nl ? (size_t)(nl - s) : n;
    if (end > p->cur_off && s[end - 1] == '\r')
        end--;
    return (struct dtm_str){s + p->cur_off, end - p->cur_off};
}

static void on_progress(void *ctx, const struct dtm_batch *b, const struct dtm_rec_error *errs,
                        size_t nerrs)
{
    struct progress *p = ctx;
    size_t scan_from = p->cur_off;
    if (nerrs && !p->rejected && !p->err && p->rejected_path[0]) {
        p->rejected = fopen(p->rejected_path, "w");
        if (!p->rejected)
            p->err = errno ? errno : EIO;
        else
            fputs("row,line,field,code,message,record\r\n", p->rejected);
    }
    for (size_t i = 0; i < nerrs && p->rejected; i++) {
        const struct dtm_rec_error *e = &errs[i];
        struct dtm_buf m, row;
        dtm_buf_init(&m, 4096);
        dtm_buf_init(&row, 1 << 20);
        dtm_rec_error_message(e, p->lang, &m);
        dtm_buf_printf(&row, "%zu,%zu,", e->index, e->line);
        dtm_buf_csv(&row, dtm_str_c(e->field));
        dtm_buf_addch(&row, ',');
        dtm_buf_csv(&row, dtm_str_c(e->code ? e->code : ""));
        dtm_buf_addch(&row, ',');
        dtm_buf_csv(&row, (struct dtm_str){m.p ? m.p : "", m.n});
        dtm_buf_addch(&row, ',');
        dtm_buf_csv(&row, raw_line(p, e->line));
        dtm_buf_addc(&row, "\r\n");
        if (row.p && !row.err)
            fwrite(row.p, 1, row.n, p->rejected);
        dtm_buf_free(&m);
        dtm_buf_free(&row);
    }
    /* the search for raw lines read pages that were given back: give them back again */
    dtm_map_forget(p->input, scan_from, p->cur_off);
    show(p, b, false);
}

void dtm_cli_print_counts(const int64_t v[5], bool json)
{
    static const char *const names[] = {"rows", "accepted", "duplicates", "updated", "rejected"};
    struct dtm_cli_out out = {0};
    for (int k = 0; k < 5; k++) {
        char s[32];
        snprintf(s, sizeof(s), "%lld", (long long)v[k]);
        dtm_cli_out_add(&out, names[k], s);
    }
    dtm_cli_out_print(&out, json);
}

/* ---- the local importer */

int dtm_local_import_open(const char *data_dir, struct dtm_local_import *li)
{
    char path[DTM_PATH_MAX], err[512];
    memset(li, 0, sizeof(*li));
    if (dtm_cli_load_conf(data_dir, NULL, &li->conf))
        return DTM_EXIT_FAIL;
    dtm_conf_path(&li->conf, "master.key", path, sizeof(path));
    if (dtm_keyring_load(path, &li->keys, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        return DTM_EXIT_FAIL;
    }
    if (dtm_cli_open_store(&li->conf, &li->store))
        return DTM_EXIT_FAIL;
    if (!(li->dict = dtm_cli_dict(li->store))) {
        dtm_cli_error("cannot load the data dictionary");
        return DTM_EXIT_FAIL;
    }
    if (dtm_writer_start(&li->conf, &li->writer, err, sizeof(err))) {
        dtm_cli_error("%s", err);
        return DTM_EXIT_FAIL;
    }
    const char *lang = getenv("LANG");
    li->lang = lang && strncmp(lang, "vi", 2) == 0 ? DTM_LANG_VI : DTM_LANG_EN;
    return DTM_EXIT_OK;
}

void dtm_local_import_close(struct dtm_local_import *li)
{
    dtm_writer_free(li->writer);
    if (li->store)
        li->store->ops->close(li->store);
    if (li->dict)
        dtm_dict_destroy(li->dict);
    dtm_keyring_wipe(&li->keys);
}

/* Copies fd (a pipe, or a gzip file) into the spool as ID.data, gunzipping when gz. */
static int spool_copy(const struct dtm_conf *c, const char *id, int fd, bool gz)
{
    struct dtm_spool *s;
    static char buf[1 << 20];
    int64_t bytes;
    int rc = dtm_spool_open(c, id, gz, c->max_batch, &s);
    if (rc)
        return rc;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = DTM_EIO;
            break;
        }
        if (n == 0) {
            rc = dtm_spool_finish(s, &bytes);
            break;
        }
        if ((rc = dtm_spool_write(s, buf, (size_t)n)))
            break;
    }
    dtm_spool_close(s);
    return rc;
}

int dtm_local_import_file(struct dtm_local_import *li, const struct dtm_local_file *f,
                          struct dtm_batch *b)
{
    const struct dtm_dataset *ds = dtm_dict_get(li->dict, dtm_str_c(f->dataset));
    struct dtm_system caller;
    struct dtm_mapped m;
    struct progress p = {.tty = isatty(2), .quiet = f->quiet, .lang = li->lang, .ds = ds};
    char spool[DTM_PATH_MAX] = "";
    const char *fmt;
    bool gz = false, is_stdin = strcmp(f->path, "-") == 0;
    struct stat sb;
    int rc, fd = -1;

    memset(b, 0, sizeof(*b));
    if (!ds) {
        dtm_cli_error("there is no dataset '%s'", f->dataset);
        return DTM_EXIT_USAGE;
    }
    if (f->system && li->store->ops->system_get(li->store, f->system, &caller) != DTM_OK) {
        dtm_cli_error("there is no system '%s'; add it with `dtm system add`", f->system);
        return DTM_EXIT_USAGE;
    }
    if (!(fmt = dtm_cli_import_format(f->path, f->format, &gz)))
        return DTM_EXIT_USAGE;
    fd = is_stdin ? 0 : open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        dtm_cli_error("cannot read %s: %s", f->path, strerror(errno));
        if (fd > 0)
            close(fd);
        return DTM_EXIT_FAIL;
    }
    if ((rc = dtm_random_id("b", b->id, sizeof(b->id)))) {
        close(fd);
        return DTM_EXIT_FAIL;
    }
    if (!S_ISREG(sb.st_mode) || gz) {
        rc = spool_copy(&li->conf, b->id, fd, gz);
        dtm_spool_path(&li->conf, b->id, spool, sizeof(spool));
        if (rc) {
            dtm_cli_error("cannot read %s: %s", f->path,
                          rc == DTM_EMALFORMED ? "not valid gzip"
                          : rc == DTM_ETOOBIG  ? "larger than [ingest] max_batch"
                                               : "read or spool write failed");
            if (fd > 0)
                close(fd);
            return DTM_EXIT_FAIL;
        }
        rc = dtm_spool_map(&li->conf, spool, &m); /* T4.2: sealed */
    } else {
        rc = dtm_map_file(f->path, &m);
    }
    if (fd > 0)
        close(fd);
    if (rc) {
        dtm_cli_error("cannot map %s", f->path);
        if (spool[0])
            unlink(spool);
        return DTM_EXIT_FAIL;
    }
    snprintf(b->system_code, sizeof(b->system_code), "%s", f->system ? f->system : "");
    snprintf(b->dataset, sizeof(b->dataset), "%s", ds->code);
    snprintf(b->format, sizeof(b->format), "%s", fmt);
    snprintf(b->origin, sizeof(b->origin), "cli");
    snprintf(b->status, sizeof(b->status), "running");
    snprintf(b->source, sizeof(b->source), "%s", is_stdin ? "(stdin)" : f->path);
    b->masked = f->masked;
    b->bytes = (int64_t)m.n;
    b->created_at = b->started_at = dtm_now_us();
    if (dtm_batch_save(li->writer, b, true)) {
        dtm_cli_error("cannot record the import in the database");
        dtm_unmap(&m);
        if (spool[0])
            unlink(spool);
        return DTM_EXIT_FAIL;
    }
    if (f->rejected)
        snprintf(p.rejected_path, sizeof(p.rejected_path), "%s", f->rejected);
    else
        snprintf(p.rejected_path, sizeof(p.rejected_path), "%s.rejected.csv",
                 is_stdin ? "stdin" : f->path);
    if (p.rejected_path[0])
        unlink(p.rejected_path); /* a stale one from an earlier run would mislead */
    p.input = &m;
    p.line_based = strcmp(fmt, "ndjson") == 0 || strcmp(fmt, "csv") == 0;
    p.cur_line = 1;
    p.t0 = p.last = dtm_mono_us();
    struct dtm_batch_run run = {
        .b = b,
        .ds = ds,
        .caller = f->system ? &caller : NULL,
        .keys = &li->keys,
        .store = li->store,
        .writer = li->writer,
        .input = &m,
        .chunk = (size_t)li->conf.batch_chunk,
        .ctx = &p,
        .progress = on_progress,
    };
    rc = dtm_batch_run(&run);
    dtm_unmap(&m);
    if (spool[0])
        unlink(spool);
    show(&p, b, true);
    if (p.rejected && fclose(p.rejected) != 0)
        p.err = EIO;
    if (p.err)
        dtm_cli_error("cannot write %s: %s", p.rejected_path, strerror(p.err));
    if (rc) {
        dtm_cli_error("the import of %s stopped: the database refused a write (see the log)",
                      f->path);
        return DTM_EXIT_FAIL;
    }
    if (strcmp(b->status, "done") != 0) {
        dtm_cli_error("%s: %s", f->path, b->error[0] ? b->error : b->status);
        return DTM_EXIT_FAIL;
    }
    return p.err ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}

int dtm_cmd_import(int argc, char **argv)
{
    static const char usage[] =
        "dtm import --dataset D [--system C] [--format json|ndjson|xml|csv] [--masked] "
        "[--rejected FILE] [--url URL --key API_KEY] [--json] FILE… (- = standard input)";
    const char *dataset = NULL, *system = NULL, *format = NULL, *rejected = NULL, *url = NULL,
               *key = NULL;
    bool masked = false;
    struct dtm_cli_opt opts[] = {
        {"dataset", &dataset, NULL}, {"system", &system, NULL},     {"format", &format, NULL},
        {"masked", NULL, &masked},   {"rejected", &rejected, NULL}, {"url", &url, NULL},
        {"key", &key, NULL}};
    struct dtm_cli_common com;
    const char *pos[64];
    size_t npos;
    struct dtm_local_import li;
    int64_t sum[5] = {0};
    int rc = dtm_cli_parse(argc, argv, opts, DTM_ARRAY_LEN(opts), &com, pos, DTM_ARRAY_LEN(pos),
                           &npos, usage);
    int exit_code = DTM_EXIT_OK;
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (!dataset || npos == 0) {
        dtm_cli_error("%s\nusage: %s", !dataset ? "--dataset is required" : "no FILE given", usage);
        return DTM_EXIT_USAGE;
    }
    if (npos > 1 && rejected) {
        dtm_cli_error("--rejected names one file; give one FILE with it\nusage: %s", usage);
        return DTM_EXIT_USAGE;
    }
    if (url || key) {
        if (!url || !key) {
            dtm_cli_error("--url and --key go together\nusage: %s", usage);
            return DTM_EXIT_USAGE;
        }
        return dtm_remote_import(url, key, dataset, format, masked, rejected, pos, npos, com.json);
    }
    if ((rc = dtm_local_import_open(com.data_dir, &li))) {
        dtm_local_import_close(&li);
        return rc;
    }
    for (size_t i = 0; i < npos; i++) {
        struct dtm_batch b;
        struct dtm_local_file f = {.dataset = dataset,
                                   .system = system,
                                   .format = format,
                                   .path = pos[i],
                                   .rejected = rejected,
                                   .masked = masked};
        int r = dtm_local_import_file(&li, &f, &b);
        int64_t v[5] = {b.total, b.accepted, b.duplicates, b.updated, b.rejected};
        for (int k = 0; k < 5; k++)
            sum[k] += v[k];
        if (r) {
            exit_code = r;
            if (r == DTM_EXIT_USAGE)
                break;
        }
    }
    dtm_local_import_close(&li);
    dtm_cli_print_counts(sum, com.json);
    return exit_code;
}
