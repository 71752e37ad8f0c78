/* cli/takeover.c — handing the listening sockets from a running `dtm serve` to its successor
 * (cli/takeover.h). The exchange, over DATA_DIR/serve.sock:
 *   successor → "DTM-TAKEOVER 1\n"
 *   server    → "FDS <http 0|1> <https 0|1>\n" with the sockets attached (SCM_RIGHTS)
 *   successor → "GO\n" once it is ready to take the traffic
 *   server    → (SIGUSR1 to itself: drain, shut down) … closes the connection as it exits.
 * Only the data dir's owner can connect: the socket is 0600 inside the 0700 data dir. */
#include "cli/takeover.h"

#include "conf/conf.h"
#include "core/core.h"
#include "http/http.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define HELLO "DTM-TAKEOVER 1\n"

struct dtm_takeover {
    struct dtm_server *srv;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    int successor; /* the connection of the successor that said go; -1 = none */
    pthread_t thread;
    atomic_bool stop;
    atomic_bool requested;
};

static int sock_path(const struct dtm_conf *c, struct sockaddr_un *sa, char *err, size_t errsz)
{
    char path[DTM_PATH_MAX];
    dtm_conf_path(c, "serve.sock", path, sizeof(path));
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path)) {
        snprintf(err, errsz,
                 "the data dir's path is too long for a Unix socket (%zu bytes; at most %zu "
                 "with /serve.sock)",
                 strlen(path), sizeof(sa->sun_path) - 1);
        return DTM_EINVAL;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return DTM_OK;
}

/* Reads one line ending in '\n' (at most n - 1 bytes), waiting at most ms. */
static int read_line(int fd, char *buf, size_t n, int ms)
{
    size_t got = 0;
    int64_t deadline = dtm_mono_us() + (int64_t)ms * 1000;
    while (got + 1 < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)((deadline - dtm_mono_us()) / 1000);
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return DTM_EIO;
        ssize_t r = read(fd, buf + got, 1);
        if (r <= 0)
            return DTM_EIO;
        if (buf[got++] == '\n') {
            buf[got] = '\0';
            return DTM_OK;
        }
    }
    return DTM_EIO;
}

/* Sends the listening sockets with their description line. */
static int send_fds(int fd, struct dtm_server *srv)
{
    int fds[2] = {dtm_server_listen_fd(srv, false), dtm_server_listen_fd(srv, true)}, send[2];
    int n = 0;
    char line[32];
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int) * 2)];
    } ctl;
    snprintf(line, sizeof(line), "FDS %d %d\n", fds[0] >= 0, fds[1] >= 0);
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            send[n++] = fds[i];
    struct iovec iov = {line, strlen(line)};
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (n > 0) {
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.space;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(h), send, sizeof(int) * (size_t)n);
    }
    return sendmsg(fd, &msg, 0) == (ssize_t)iov.iov_len ? DTM_OK : DTM_EIO;
}

/* One successor: hello, the sockets, go. True when it said go (fd then kept). */
static bool serve_one(struct dtm_takeover *t, int fd)
{
    char line[64];
    if (read_line(fd, line, sizeof(line), 2000) || strcmp(line, HELLO) != 0) {
        dtm_log(DTM_LOG_WARN, "takeover: a connection to serve.sock did not say hello", NULL);
        return false;
    }
    if (send_fds(fd, t->srv)) {
        dtm_log(DTM_LOG_ERROR, "takeover: cannot send the listening sockets", NULL);
        return false;
    }
    dtm_log(DTM_LOG_INFO, "takeover: listening sockets handed to a successor", NULL);
    /* the successor loads its configuration and keys before it says go */
    if (read_line(fd, line, sizeof(line), 120000) || strcmp(line, "GO\n") != 0) {
        dtm_log(DTM_LOG_WARN, "takeover: the successor left without taking over; serving on", NULL);
        return false;
    }
    return true;
}

static void *run(void *arg)
{
    struct dtm_takeover *t = arg;
    while (!atomic_load(&t->stop)) {
        struct pollfd p = {t->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept(t->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        if (serve_one(t, fd)) {
            t->successor = fd;
            atomic_store(&t->requested, true);
            kill(getpid(), SIGUSR1);
            return NULL; /* one handover per server */
        }
        close(fd);
    }
    return NULL;
}

void dtm_takeover_listen(const struct dtm_conf *c, struct dtm_server *srv,
                         struct dtm_takeover **out)
{
    struct sockaddr_un sa;
    char err[256];
    struct dtm_takeover *t;
    *out = NULL;
    if (sock_path(c, &sa, err, sizeof(err))) {
        dtm_logf(DTM_LOG_WARN, "takeover disabled", "\"reason\":\"%s\"", err);
        return;
    }
    /* a server already answering there keeps its socket (two servers on one data dir) */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        close(probe);
        dtm_log(DTM_LOG_WARN,
                "takeover disabled: another server listens on this data dir's serve.sock", NULL);
        return;
    }
    if (probe >= 0)
        close(probe);
    unlink(sa.sun_path); /* a stale one, left by a crash */
    if (!(t = calloc(1, sizeof(*t))))
        return;
    t->srv = srv;
    t->successor = -1;
    memcpy(t->path, sa.sun_path, sizeof(t->path));
    mode_t old = umask(0077);
    t->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int ok = t->listen_fd >= 0 && bind(t->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
             chmod(sa.sun_path, 0600) == 0 && listen(t->listen_fd, 4) == 0;
    umask(old);
    if (!ok || pthread_create(&t->thread, NULL, run, t) != 0) {
        dtm_logf(DTM_LOG_WARN, "takeover disabled: cannot listen on serve.sock", "\"errno\":%d",
                 errno);
        if (t->listen_fd >= 0)
            close(t->listen_fd);
        unlink(t->path);
        free(t);
        return;
    }
    *out = t;
}

bool dtm_takeover_requested(struct dtm_takeover *t)
{
    return t && atomic_load(&t->requested);
}

void dtm_takeover_stop(struct dtm_takeover *t)
{
    if (!t || t->listen_fd < 0)
        return;
    atomic_store(&t->stop, true);
    pthread_join(t->thread, NULL);
    close(t->listen_fd);
    t->listen_fd = -1;
    /* the successor binds its own serve.sock once this server has ended */
    unlink(t->path);
}

void dtm_takeover_free(struct dtm_takeover *t)
{
    if (!t)
        return;
    dtm_takeover_stop(t);
    if (t->successor >= 0)
        close(t->successor); /* the successor's wait ends here */
    free(t);
}

int dtm_takeover_request(const struct dtm_conf *c, int fds[2], int *ctl, char *err, size_t errsz)
{
    struct sockaddr_un sa;
    char line[64];
    int fd, rc;
    fds[0] = fds[1] = -1;
    *ctl = -1;
    if ((rc = sock_path(c, &sa, err, errsz)))
        return rc;
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(err, errsz, "cannot create a Unix socket: %s", strerror(errno));
        return DTM_EIO;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED) {
            snprintf(err, errsz, "no server is running on this data dir");
            return DTM_ENOTFOUND;
        }
        snprintf(err, errsz, "cannot reach the running server at %s: %s", sa.sun_path, strerror(e));
        return DTM_EIO;
    }
    if (write(fd, HELLO, strlen(HELLO)) != (ssize_t)strlen(HELLO))
        goto broken;
    {
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(sizeof(int) * 2)];
        } cbuf;
        struct iovec iov = {line, sizeof(line) - 1};
        struct msghdr msg = {0};
        struct pollfd p = {fd, POLLIN, 0};
        int http = 0, https = 0, got[2] = {-1, -1}, n = 0;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.space;
        msg.msg_controllen = sizeof(cbuf.space);
        if (poll(&p, 1, 5000) <= 0)
            goto broken;
        ssize_t r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (r <= 0)
            goto broken;
        line[r] = '\0';
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS) {
                size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k && n < 2; i++)
                    memcpy(&got[n++], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
            }
        if (sscanf(line, "FDS %d %d\n", &http, &https) != 2 || http + https != n ||
            (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
            for (int i = 0; i < n; i++)
                close(got[i]);
            goto broken;
        }
        fds[0] = http ? got[0] : -1;
        fds[1] = https ? got[http ? 1 : 0] : -1;
    }
    *ctl = fd;
    return DTM_OK;
broken:
    close(fd);
    snprintf(err, errsz, "the running server did not hand over its sockets (an older version?)");
    return DTM_EIO;
}

int dtm_takeover_finish(int ctl, int64_t timeout_s, char *err, size_t errsz)
{
    char c;
    int64_t deadline = dtm_mono_us() + timeout_s * 1000000;
    if (write(ctl, "GO\n", 3) != 3) {
        snprintf(err, errsz, "the running server went away before the handover");
        close(ctl);
        return DTM_EIO;
    }
    for (;;) {
        struct pollfd p = {ctl, POLLIN, 0};
        int left = (int)((deadline - dtm_mono_us()) / 1000);
        if (left <= 0) {
            snprintf(err, errsz, "the running server did not stop within %lld s",
                     (long long)timeout_s);
            close(ctl);
            return DTM_EIO;
        }
        if (poll(&p, 1, left) > 0 && read(ctl, &c, 1) <= 0)
            break; /* its end closed: it has ended */
    }
    close(ctl);
    return DTM_OK;
}
