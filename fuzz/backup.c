/* fuzz/backup.c — libFuzzer driver for the backup reader (backup/backup.c, issue 10): whatever
 * file an operator is handed goes to dtm_backup_verify with the installation's master key, the
 * way `dtm backup verify` and `dtm restore` read it. Three shapes of input:
 *   - as is: a whole backup file;
 *   - '!' then text: the text as the header of a file with the right magic and length, followed
 *     by the chunks of a real backup (the manifest parser, the key unwrap);
 *   - '#' then patches (4-byte big-endian offset, 1 byte XOR mask, repeated): a real backup of a
 *     real data dir made at start, with those bytes changed (the framing and every check after).
 * Never a crash, an overflow or a leak — and a changed backup never verifies. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/backup.h"
#include "gate/gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], key[128], file[128];
static uint8_t *good;
static size_t good_n, good_hdr; /* the real backup, and where its chunks start */

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_backup: cannot remove %s\n", dir);
    free(good);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        abort();
}

static void setup(void)
{
    char path[128], err[1024];
    struct dtm_conf c;
    struct dtm_store *st;
    struct dtm_buf sample;
    struct dtm_backup_result res;
    FILE *f;
    long n;
    snprintf(dir, sizeof(dir), "/tmp/dtm-fuzz-backup-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    atexit(cleanup);
    dtm_log_set_level(DTM_LOG_ERROR);
    dtm_conf_defaults(&c, dir);
    dtm_conf_path(&c, "master.key", key, sizeof(key));
    dtm_conf_path(&c, "dtm.conf", path, sizeof(path));
    dtm_buf_init(&sample, 1 << 20);
    if (dtm_keyring_create(key, err, sizeof(err)) || dtm_conf_sample(&sample))
        abort();
    write_file(path, sample.p, sample.n);
    dtm_buf_free(&sample);
    if (dtm_store_open(&c, &st, err, sizeof(err)) || st->ops->migrate(st))
        abort();
    st->ops->close(st);
    snprintf(file, sizeof(file), "%s/good.dtmb", dir);
    if (dtm_backup_create(
            &c, file, &(struct dtm_backup_opts){.threads = 1, .actor_kind = "cli", .actor = "fuzz"},
            &res, err, sizeof(err)))
        abort();
    dtm_backup_result_free(&res);
    if (!(f = fopen(file, "rb")) || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 12 ||
        fseek(f, 0, SEEK_SET) || !(good = malloc((size_t)n)) ||
        fread(good, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    good_n = (size_t)n;
    good_hdr =
        12 + ((size_t)good[8] << 24 | (size_t)good[9] << 16 | (size_t)good[10] << 8 | good[11]);
    snprintf(file, sizeof(file), "%s/input.dtmb", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    struct dtm_backup_result res;
    char err[1024];
    uint8_t *buf = NULL;
    size_t n = size;
    int rc;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size > 0 && data[0] == '!') { /* a header of our making before real chunks */
        size_t h = size - 1;
        n = 12 + h + (good_n - good_hdr);
        if (!(buf = malloc(n)))
            return 0;
        memcpy(buf, DTM_BACKUP_MAGIC, 8);
        buf[8] = (uint8_t)(h >> 24);
        buf[9] = (uint8_t)(h >> 16);
        buf[10] = (uint8_t)(h >> 8);
        buf[11] = (uint8_t)h;
        memcpy(buf + 12, data + 1, h);
        memcpy(buf + 12 + h, good + good_hdr, good_n - good_hdr);
    } else if (size > 0 && data[0] == '#') { /* patches of the real backup */
        if (!(buf = malloc(good_n)))
            return 0;
        memcpy(buf, good, good_n);
        n = good_n;
        for (size_t i = 1; i + 5 <= size; i += 5) {
            size_t off = ((size_t)data[i] << 24 | (size_t)data[i + 1] << 16 |
                          (size_t)data[i + 2] << 8 | data[i + 3]) %
                         good_n;
            buf[off] ^= data[i + 4];
        }
    }
    write_file(file, buf ? buf : data, n);
    rc = dtm_backup_verify(file, key, false, &res, err, sizeof(err));
    /* only the real backup, byte for byte, verifies: anything else changed is refused */
    if (rc == DTM_OK && (n != good_n || memcmp(buf ? buf : data, good, n) != 0))
        abort();
    dtm_backup_result_free(&res);
    free(buf);
    return 0;
}
