/* cli/init.c — `dtm init`: a new data dir with its config, master key (0600), self-signed TLS
 * certificate, database and first admin account (random password printed once). */
#include "cli/cli.h"
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

int dtm_cmd_init(int argc, char **argv)
{
    static const char usage[] = "dtm init [--data-dir DIR] [--json]";
    bool demo = false;
    struct dtm_cli_opt opts[] = {{"demo", NULL, &demo}};
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
    if (demo) {
        dtm_cli_error("--demo is not available yet: demo data comes with batch receiving; run "
                      "`dtm init` without it");
        return DTM_EXIT_USAGE;
    }
    dtm_conf_defaults(&c, com.data_dir);
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
    if (dtm_password_random(password, sizeof(password), 20) ||
        dtm_password_hash(password, hash, sizeof(hash)) ||
        st->ops->user_add(st, "admin", "admin", hash, dtm_now_us())) {
        dtm_cli_error("cannot create the admin account");
        st->ops->close(st);
        return DTM_EXIT_FAIL;
    }
    st->ops->close(st);
    dtm_cli_out_add(&out, "data_dir", com.data_dir);
    dtm_cli_out_add(&out, "admin_username", "admin");
    dtm_cli_out_add(&out, "admin_password", password);
    dtm_cli_out_print(&out, com.json);
    memset(password, 0, sizeof(password));
    memset(&out, 0, sizeof(out));
    return DTM_EXIT_OK;
}
