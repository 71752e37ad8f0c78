/* cli/signing.c — `dtm key rotate-signing` (T2.4): a new key signs the OAuth access tokens from
 * now on. The previous keys are retired, not deleted: they stay in GET /oauth/jwks.json and keep
 * verifying the tokens they signed until those expired (gate/jwt.c). A running server signs
 * with the new key from its next token request (it reads the current key from the store each
 * time). The rotation and its audit entry commit together. */
#include "cli/cli.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int install(struct dtm_store *st, void *k)
{
    return dtm_signing_key_install(st, k);
}

int dtm_cmd_key_rotate_signing(int argc, char **argv)
{
    static const char usage[] = "dtm key rotate-signing [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_signing_key *k;
    struct dtm_store *st;
    struct dtm_cli_out out = {0};
    char kid[DTM_ID_MAX];
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    if (com.help) {
        printf("usage: %s\n", usage);
        return DTM_EXIT_OK;
    }
    if (dtm_cli_load_conf(com.data_dir, NULL, &c))
        return DTM_EXIT_FAIL;
    if (!(k = malloc(sizeof(*k))))
        return DTM_EXIT_FAIL;
    if (dtm_cli_open_store(&c, &st)) {
        free(k);
        return DTM_EXIT_FAIL;
    }
    /* sealed before the transaction: the first seal of a process may take one of its own */
    if ((rc = dtm_signing_key_new(dtm_datakeys_get(&c), dtm_now_us(), k)) == DTM_OK) {
        snprintf(kid, sizeof(kid), "%s", k->kid);
        rc = dtm_cli_audited(&c, st, install, k, "signing_key.rotated", kid, "{\"alg\":\"ES256\"}");
    }
    st->ops->close(st);
    OPENSSL_cleanse(k, sizeof(*k));
    free(k);
    if (rc) {
        dtm_cli_error("cannot rotate the token-signing key (%s)", dtm_rc_name(rc));
        return DTM_EXIT_FAIL;
    }
    dtm_cli_out_add(&out, "kid", kid);
    dtm_cli_out_add(&out, "alg", "ES256");
    dtm_cli_out_print(&out, com.json);
    return DTM_EXIT_OK;
}
