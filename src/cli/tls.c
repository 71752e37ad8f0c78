/* cli/tls.c — the self-signed certificate `dtm init` creates so HTTPS works out of the box
 * (T2.5). Operators replace tls.crt/tls.key with a certificate from their CA and send SIGHUP. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int add_ext(X509 *cert, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ex;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
    ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ex)
        return -1;
    X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return 0;
}

static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    FILE *f;
    int ok;
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return -1;
    }
    ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    fclose(f);
    return ok ? 0 : -1;
}

int dtm_tls_self_signed(const char *cert_path, const char *key_path, char *err, size_t errsz)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name;
    char host[256] = "localhost", san[512];
    unsigned char serial[16];
    ASN1_INTEGER *sn = NULL;
    BIGNUM *bn = NULL;
    int rc = DTM_EIO;
    if (!key || !cert) {
        snprintf(err, errsz, "cannot generate a TLS key");
        goto out;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    X509_set_version(cert, 2);
    dtm_random(serial, sizeof(serial));
    serial[0] &= 0x7f;
    bn = BN_bin2bn(serial, sizeof(serial), NULL);
    sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    if (!sn) {
        snprintf(err, errsz, "cannot make a certificate serial number");
        goto out;
    }
    X509_set_serialNumber(cert, sn);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 825L * 86400);
    X509_set_pubkey(cert, key);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"DTM", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(cert, name);
    if (strcmp(host, "localhost") &&
        strspn(host, "abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == strlen(host))
        snprintf(san, sizeof(san), "DNS:localhost,DNS:%s,IP:127.0.0.1,IP:::1", host);
    else
        snprintf(san, sizeof(san), "DNS:localhost,IP:127.0.0.1,IP:::1");
    if (add_ext(cert, NID_subject_alt_name, san) ||
        add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(cert, NID_key_usage, "critical,digitalSignature") ||
        add_ext(cert, NID_ext_key_usage, "serverAuth")) {
        snprintf(err, errsz, "cannot build the TLS certificate extensions");
        goto out;
    }
    if (!X509_sign(cert, key, EVP_sha256())) {
        snprintf(err, errsz, "cannot sign the TLS certificate");
        goto out;
    }
    if (write_pem(key_path, 0600, key, NULL)) {
        snprintf(err, errsz, "cannot write %s: %s", key_path, strerror(errno));
        goto out;
    }
    if (write_pem(cert_path, 0644, NULL, cert)) {
        snprintf(err, errsz, "cannot write %s: %s", cert_path, strerror(errno));
        goto out;
    }
    rc = DTM_OK;
out:
    ASN1_INTEGER_free(sn);
    BN_free(bn);
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}
