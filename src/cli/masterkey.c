/* cli/masterkey.c — `dtm key rotate-master` (T4.2): a new master key (KEK) for the data dir,
 * without stopping its server. Every data key is re-wrapped under the new KEK in one
 * transaction, then the new key file replaces master.key (the old KEY is gone: nothing is
 * wrapped under it any more). A running server needs no signal: it already holds the data keys
 * it uses, and unwraps any other one lazily with the KEK its row names (gate/datakey.c). The
 * root secret that the purpose keys (hashes, masks, the audit chain) come from is carried over
 * sealed under the new KEK, so they do not change. */
#include "audit/audit.h"
#include "cli/cli.h"
#include "gate/gate.h"

#include <stdio.h>
#include <string.h>

int dtm_cmd_key_rotate_master(int argc, char **argv)
{
    static const char usage[] = "dtm key rotate-master [--data-dir DIR] [--json]";
    struct dtm_cli_common com;
    const char *pos[1];
    size_t npos;
    struct dtm_conf c;
    struct dtm_store *st;
    char err[512], new_id[DTM_KEK_ID_LEN + 1] = "", old_id[DTM_KEK_ID_LEN + 1] = "", n[32];
    char detail[256];
    int64_t rewrapped = 0;
    int rc = dtm_cli_parse(argc, argv, NULL, 0, &com, pos, 0, &npos, usage);
    if (rc)
        return rc;
    /* the store at the current schema (the data_keys table) before anything else */
    if (dtm_cli_load_conf(com.data_dir, NULL, &c) || dtm_cli_open_store(&c, &st))
        return DTM_EXIT_FAIL;
    st->ops->close(st);
    if ((rc = dtm_masterkey_rotate(&c, &rewrapped, new_id, old_id, err, sizeof(err)))) {
        dtm_cli_error("cannot rotate the master key: %s", err);
        return DTM_EXIT_FAIL;
    }
    /* S3: the rotation is on the audit trail (after the fact: the files changed already) */
    snprintf(detail, sizeof(detail),
             "{\"old_kek_id\":\"%s\",\"new_kek_id\":\"%s\",\"data_keys\":%lld}", old_id, new_id,
             (long long)rewrapped);
    if (dtm_cli_open_store(&c, &st) == DTM_OK) {
        if ((rc = st->ops->begin(st)) == DTM_OK &&
            (rc = dtm_cli_audit(&c, st, "key.master_rotated", "master.key", detail)) == DTM_OK)
            rc = st->ops->commit(st);
        if (rc)
            st->ops->rollback(st);
        st->ops->close(st);
    } else {
        rc = DTM_ESTORE;
    }
    if (rc)
        dtm_cli_error("the master key was rotated, but the audit entry could not be written (%s)",
                      dtm_rc_name(rc));
    {
        struct dtm_cli_out out = {0};
        snprintf(n, sizeof(n), "%lld", (long long)rewrapped);
        dtm_cli_out_add(&out, "kek_id", new_id);
        dtm_cli_out_add(&out, "previous_kek_id", old_id);
        dtm_cli_out_add(&out, "data_keys_rewrapped", n);
        dtm_cli_out_print(&out, com.json);
    }
    return rc ? DTM_EXIT_FAIL : DTM_EXIT_OK;
}
