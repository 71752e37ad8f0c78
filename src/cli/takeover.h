/* cli/takeover.h — restarts without downtime (issue 10, item 4): a new `dtm serve --takeover`
 * receives the listening sockets of the server running on the same data dir through a Unix
 * socket (DATA_DIR/serve.sock, SCM_RIGHTS), so connections queue on the very same sockets while
 * one server hands over to the other and none is refused. The old server stops accepting,
 * answers what it has, closes its connections as each one's next answer goes out, shuts down
 * cleanly (writer, rollups, audit) and exits; the new one then opens the store and accepts. */
#ifndef DTM_CLI_TAKEOVER_H
#define DTM_CLI_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dtm_conf;
struct dtm_server;
struct dtm_takeover;

/* The running server's side: listens on DATA_DIR/serve.sock (mode 0600) in a thread. When a
 * successor has taken the sockets and says go, SIGUSR1 is raised in this process. Not fatal when
 * it cannot listen (the reason is logged; *out is then NULL). */
void dtm_takeover_listen(const struct dtm_conf *c, struct dtm_server *srv,
                         struct dtm_takeover **out);
/* Whether SIGUSR1 came from a successor that is now waiting for this server to end. */
bool dtm_takeover_requested(struct dtm_takeover *t);
/* Stops listening and removes serve.sock; the successor's connection closes last (at free), which
 * tells it this server has ended. */
void dtm_takeover_stop(struct dtm_takeover *t);
void dtm_takeover_free(struct dtm_takeover *t);

/* The successor's side: asks the server running on this data dir for its listening sockets —
 * fds[0] plain HTTP, fds[1] HTTPS (-1 = it has none). DTM_OK with *ctl the connection to it;
 * DTM_ENOTFOUND when no server answers there (start as usual); another error with a sentence. */
int dtm_takeover_request(const struct dtm_conf *c, int fds[2], int *ctl, char *err, size_t errsz);
/* Tells it to go and waits until it has ended (at most timeout_s). DTM_OK or DTM_EIO. */
int dtm_takeover_finish(int ctl, int64_t timeout_s, char *err, size_t errsz);

#endif
