/* alert/deliver.c — delivery of notified alerts to their channels (T5.3): routing by severity
 * and rule, the three channel types — webhook (JSON POST signed with X-DTM-Signature, libcurl),
 * e-mail (SMTP via libcurl, STARTTLS required unless tls = false) and syslog (RFC 5424 over
 * UDP, or syslog(3)) — and the delivery thread: one attempt at a time, failed attempts retried
 * with exponential backoff up to [alert] max_attempts, each channel's state stored
 * (alert_deliveries) on the thread's own store connection. Secrets (a webhook's key, an SMTP
 * password) are never logged nor stored with the state. */
#include "alert/alert.h"
#include "gate/gate.h"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (64 * 1024)
#define PENDING_MAX 4096 /* deliveries waiting at most (beyond: dropped and logged) */

/* ---- routing */

bool dtm_alert_rule_match(const char *rules, const char *rule)
{
    const char *p = rules;
    bool any = false;
    while (*p) {
        size_t n = strcspn(p, ",");
        struct dtm_str t = dtm_str_trim((struct dtm_str){p, n});
        if (t.n) {
            any = true;
            if (t.p[t.n - 1] == '*') {
                if (strlen(rule) >= t.n - 1 && !strncmp(rule, t.p, t.n - 1))
                    return true;
            } else if (dtm_str_eqc(t, rule)) {
                return true;
            }
        }
        p += n;
        if (*p)
            p++;
    }
    return !any;
}

size_t dtm_alert_route(const struct dtm_conf *c, const struct dtm_alert *a, size_t *idx, size_t max)
{
    enum dtm_alert_severity sev = DTM_ALERT_CRITICAL;
    const char *list = c->alert_channels, *p;
    size_t n = 0;
    dtm_alert_severity_parse(a->severity, &sev);
    if (sev == DTM_ALERT_INFO && c->alert_channels_info[0])
        list = c->alert_channels_info;
    else if (sev == DTM_ALERT_WARNING && c->alert_channels_warning[0])
        list = c->alert_channels_warning;
    else if (sev == DTM_ALERT_CRITICAL && c->alert_channels_critical[0])
        list = c->alert_channels_critical;
    for (p = list; *p && n < max;) {
        size_t len = strcspn(p, ",");
        struct dtm_str t = dtm_str_trim((struct dtm_str){p, len});
        for (size_t i = 0; t.n && i < c->nchannels; i++) {
            const struct dtm_conf_channel *ch = &c->channels[i];
            enum dtm_alert_severity min = DTM_ALERT_INFO;
            bool dup = false;
            if (!dtm_str_eqc(t, ch->name))
                continue;
            dtm_alert_severity_parse(ch->min_severity, &min);
            for (size_t k = 0; k < n; k++)
                dup = dup || idx[k] == i;
            if (!dup && sev >= min && dtm_alert_rule_match(ch->rules, a->rule))
                idx[n++] = i;
        }
        p += len;
        if (*p)
            p++;
    }
    return n;
}

void dtm_alert_signature(const char *secret, const char *body, size_t n, char *out, size_t outsz)
{
    uint8_t mac[32];
    char hex[65];
    dtm_hmac_sha256((const uint8_t *)secret, strlen(secret), body, n, mac);
    dtm_hex(mac, sizeof(mac), hex);
    snprintf(out, outsz, "sha256=%s", hex);
    OPENSSL_cleanse(mac, sizeof(mac));
}

int64_t dtm_alert_backoff(int64_t initial, int64_t attempt)
{
    int64_t s = initial < 1 ? 1 : initial;
    for (int64_t i = 2; i < attempt && s < 3600; i++)
        s *= 2;
    return DTM_MIN(s, 3600);
}

/* ---- formats */

/* Text for one line: control characters become spaces. */
static void add_line_text(struct dtm_buf *b, const char *s)
{
    for (; *s; s++)
        dtm_buf_addch(b, (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s);
}

/* An RFC 5424 PARAM-VALUE: '"', '\' and ']' escaped, control characters replaced. */
static void add_sd_value(struct dtm_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\' || *s == ']')
            dtm_buf_addch(b, '\\');
        dtm_buf_addch(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    }
}

static int syslog_severity(const char *sev)
{
    enum dtm_alert_severity s = DTM_ALERT_CRITICAL;
    dtm_alert_severity_parse(sev, &s);
    return s == DTM_ALERT_CRITICAL ? 2 : s == DTM_ALERT_WARNING ? 4 : 6; /* crit, warning, info */
}

int dtm_alert_syslog_format(struct dtm_buf *b, const struct dtm_alert *a, int facility,
                            const char *hostname, long pid)
{
    char ts[40];
    dtm_time_fmt_utc(dtm_now_us(), ts, sizeof(ts));
    dtm_buf_printf(b, "<%d>1 %s ", facility * 8 + syslog_severity(a->severity), ts);
    /* HOSTNAME: printable US-ASCII without spaces, or the nil value */
    if (!hostname || !*hostname)
        dtm_buf_addch(b, '-');
    for (const char *h = hostname; h && *h && h - hostname < 255; h++)
        dtm_buf_addch(b, *h > 32 && *h < 127 ? *h : '_');
    dtm_buf_printf(b, " dtm %ld alert [dtm@32473 id=\"%lld\" rule=\"", pid, (long long)a->id);
    add_sd_value(b, a->rule);
    dtm_buf_addc(b, "\" key=\"");
    add_sd_value(b, a->key);
    dtm_buf_printf(b, "\" severity=\"%s\" state=\"%s\" count=\"%lld\"] \xEF\xBB\xBF", a->severity,
                   a->state, (long long)a->count);
    if (!strcmp(a->state, "resolved"))
        dtm_buf_addc(b, "Resolved: ");
    add_line_text(b, a->title);
    return b->err;
}

static bool resolved(const struct dtm_alert *a)
{
    return strcmp(a->state, "resolved") == 0;
}

/* A header value: CR and LF removed (no header injection); non-ASCII as an RFC 2047 word. */
static void add_header_value(struct dtm_buf *b, const char *s)
{
    bool ascii = true;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        ascii = ascii && (unsigned char)s[i] < 0x80;
    if (ascii) {
        add_line_text(b, s);
        return;
    }
    {
        unsigned char *enc = malloc(4 * (n / 3 + 1) + 1);
        if (!enc) {
            b->err = DTM_ENOMEM;
            return;
        }
        EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
        dtm_buf_printf(b, "=?UTF-8?B?%s?=", enc);
        free(enc);
    }
}

static void add_date(struct dtm_buf *b, int64_t now)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(now / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    dtm_buf_printf(b, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
                   months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int dtm_alert_email_format(struct dtm_buf *b, const struct dtm_alert *a, const char *from,
                           const char *to, const char *hostname, int64_t now)
{
    char rnd[32], ts[40];
    if (dtm_random_token("", 10, rnd, sizeof(rnd)))
        snprintf(rnd, sizeof(rnd), "%lld", (long long)now);
    dtm_buf_addc(b, "From: ");
    add_line_text(b, from);
    dtm_buf_addc(b, "\r\nTo: ");
    add_line_text(b, to);
    dtm_buf_addc(b, "\r\nSubject: ");
    {
        struct dtm_buf s;
        dtm_buf_init(&s, 1024);
        dtm_buf_printf(&s, "[DTM %s] %s", resolved(a) ? "resolved" : a->severity, a->title);
        add_header_value(b, s.err || !s.p ? a->rule : s.p);
        dtm_buf_free(&s);
    }
    dtm_buf_addc(b, "\r\nDate: ");
    add_date(b, now);
    dtm_buf_printf(b, "\r\nMessage-ID: <dtm-alert-%lld-%s@", (long long)a->id, rnd);
    for (const char *h = hostname && *hostname ? hostname : "localhost"; *h; h++)
        dtm_buf_addch(b, (*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
                                 (*h >= '0' && *h <= '9') || *h == '.' || *h == '-'
                             ? *h
                             : '-');
    dtm_buf_addc(b, ">\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n");
    dtm_buf_printf(b, "X-DTM-Alert-Id: %lld\r\n\r\n", (long long)a->id);
    /* the body: one fact a line */
    dtm_buf_addc(b, resolved(a) ? "DTM alert resolved: " : "DTM alert: ");
    add_line_text(b, a->title);
    dtm_buf_printf(b, "\r\n\r\nSeverity: %s\r\nState: %s\r\nRule: ", a->severity, a->state);
    add_line_text(b, a->rule);
    dtm_buf_addc(b, "\r\nKey: ");
    add_line_text(b, a->key);
    dtm_time_fmt(a->first_seen, ts, sizeof(ts));
    dtm_buf_printf(b, "\r\nFirst seen: %s\r\nCount: %lld\r\nAlert id: %lld\r\nDetail: ", ts,
                   (long long)a->count, (long long)a->id);
    add_line_text(b, a->detail[0] ? a->detail : "{}");
    dtm_buf_addc(b, "\r\n");
    return b->err;
}

/* ---- channels: each returns DTM_OK or an error with a sentence in why (never a secret) */

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

static void hostname_of(char *out, size_t outsz)
{
    if (gethostname(out, outsz) != 0)
        snprintf(out, outsz, "localhost");
    out[outsz - 1] = '\0';
}

/* ---- signed webhook POSTs (alerts here; subscriptions in share/push.c) */

bool dtm_webhook_ip_public(const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
        /* 0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.168/16,
         * 198.18/15 (benchmarks), 224/4 multicast, 240/4 reserved and broadcast */
        return !(a[0] == 0 || a[0] == 10 || (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] == 127 ||
                 (a[0] == 169 && a[1] == 254) || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
                 (a[0] == 192 && a[1] == 0 && a[2] == 0) || (a[0] == 192 && a[1] == 168) ||
                 (a[0] == 198 && (a[1] & 0xfe) == 18) || a[0] >= 224);
    }
    if (inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char zero[15] = {0};
        char v4[INET_ADDRSTRLEN];
        if (!memcmp(a, mapped, 12)) /* ::ffff:a.b.c.d: the IPv4 address decides */
            return inet_ntop(AF_INET, a + 12, v4, sizeof(v4)) && dtm_webhook_ip_public(v4);
        /* ::, ::1, fc00::/7 unique local, fe80::/10 link-local, ff00::/8 multicast */
        return !(!memcmp(a, zero, 15) || (a[0] & 0xfe) == 0xfc ||
                 (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || a[0] == 0xff);
    }
    return false;
}

/* CURLOPT_OPENSOCKETFUNCTION: called with each address to connect to, after name resolution
 * and before any packet is sent — a name that resolves to a private address (DNS rebinding
 * included) is refused too, and no connection is even tried */
static curl_socket_t refuse_private(void *ctx, curlsocktype purpose, struct curl_sockaddr *a)
{
    char ip[INET6_ADDRSTRLEN] = "";
    const void *in = NULL;
    (void)purpose;
    if (a->family == AF_INET)
        in = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
    else if (a->family == AF_INET6)
        in = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
    if (!in || !inet_ntop(a->family, in, ip, sizeof(ip)) || !dtm_webhook_ip_public(ip)) {
        *(bool *)ctx = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

int dtm_webhook_post(const struct dtm_webhook *w, long *status, char *why, size_t whysz)
{
    struct curl_slist *h = NULL;
    char sig[80], hdr[128];
    bool refused = false;
    CURL *c;
    CURLcode cc;
    int rc = DTM_EIO;
    *status = 0;
    if (!(c = curl_easy_init())) {
        snprintf(why, whysz, "out of memory");
        return DTM_ENOMEM;
    }
    dtm_alert_signature(w->secret, w->body, w->n, sig, sizeof(sig));
    h = curl_slist_append(h, "Content-Type: application/json; charset=utf-8");
    snprintf(hdr, sizeof(hdr), "X-DTM-Signature: %s", sig);
    h = curl_slist_append(h, hdr);
    for (size_t i = 0; i < w->nheaders; i++)
        h = curl_slist_append(h, w->headers[i]);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* the signed body goes where configured */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, w->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)w->n);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)w->timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)w->timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, w->user_agent);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (w->refuse_private) {
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, refuse_private);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &refused);
    }
    if (w->ca_file && w->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, w->ca_file);
    cc = curl_easy_perform(c);
    if (cc != CURLE_OK && refused) { /* (a name with a public address too may still work) */
        snprintf(why, whysz, "the address is not public (refused; [subscriptions] allow_private)");
    } else if (cc != CURLE_OK) {
        snprintf(why, whysz, "%s", curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (*status >= 200 && *status < 300)
            rc = DTM_OK;
        else
            snprintf(why, whysz, "HTTP %ld", *status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(hdr, sizeof(hdr));
    return rc;
}

static int send_webhook(const struct dtm_conf_channel *ch, const struct dtm_alert *a,
                        const char *event, char *why, size_t whysz)
{
    struct dtm_buf body;
    char host[256], ts[40], ev[64], id[64];
    const char *hdrs[2] = {ev, id};
    long status;
    int rc;
    hostname_of(host, sizeof(host));
    dtm_time_fmt(dtm_now_us(), ts, sizeof(ts));
    dtm_buf_init(&body, BODY_MAX);
    dtm_buf_printf(&body, "{\"event\":\"alert.%s\",\"host\":", event);
    dtm_buf_json_strc(&body, host);
    dtm_buf_printf(&body, ",\"sent_at\":\"%s\",\"alert\":", ts);
    dtm_alert_json(&body, a);
    dtm_buf_addch(&body, '}');
    if (body.err) {
        snprintf(why, whysz, "out of memory");
        dtm_buf_free(&body);
        return DTM_ENOMEM;
    }
    snprintf(ev, sizeof(ev), "X-DTM-Event: alert.%s", event);
    snprintf(id, sizeof(id), "X-DTM-Alert-Id: %lld", (long long)a->id);
    rc = dtm_webhook_post(&(struct dtm_webhook){.url = ch->url,
                                                .secret = ch->secret,
                                                .body = body.p,
                                                .n = body.n,
                                                .headers = hdrs,
                                                .nheaders = 2,
                                                .timeout = ch->timeout,
                                                .ca_file = ch->ca_file,
                                                .user_agent = "dtm-alert/" DTM_VERSION},
                          &status, why, whysz);
    dtm_buf_free(&body);
    return rc;
}

struct upload {
    const char *p;
    size_t n, off;
};

static size_t read_mail(char *out, size_t size, size_t nitems, void *ctx)
{
    struct upload *u = ctx;
    size_t n = DTM_MIN(size * nitems, u->n - u->off);
    memcpy(out, u->p + u->off, n);
    u->off += n;
    return n;
}

static int send_email(const struct dtm_conf_channel *ch, const struct dtm_alert *a, char *why,
                      size_t whysz)
{
    struct dtm_buf msg;
    struct curl_slist *rcpt = NULL;
    struct upload u;
    char host[256], addr[300];
    CURL *c;
    CURLcode cc;
    int rc = DTM_EIO;
    const char *p;
    hostname_of(host, sizeof(host));
    dtm_buf_init(&msg, BODY_MAX);
    dtm_alert_email_format(&msg, a, ch->from, ch->to, host, dtm_now_us());
    if (msg.err || !(c = curl_easy_init())) {
        snprintf(why, whysz, "out of memory");
        dtm_buf_free(&msg);
        return DTM_ENOMEM;
    }
    for (p = ch->to; *p;) {
        size_t n = strcspn(p, ",");
        struct dtm_str t = dtm_str_trim((struct dtm_str){p, n});
        if (t.n && t.n < sizeof(addr) - 3) {
            snprintf(addr, sizeof(addr), "<%.*s>", (int)t.n, t.p);
            rcpt = curl_slist_append(rcpt, addr);
        }
        p += n;
        if (*p)
            p++;
    }
    snprintf(addr, sizeof(addr), "<%s>", ch->from);
    u = (struct upload){msg.p, msg.n, 0};
    curl_easy_setopt(c, CURLOPT_URL, ch->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL, ch->tls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
    if (ch->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, ch->ca_file);
    if (ch->username[0]) {
        curl_easy_setopt(c, CURLOPT_USERNAME, ch->username);
        curl_easy_setopt(c, CURLOPT_PASSWORD, ch->password);
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, addr);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_mail);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)ch->timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)ch->timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        rc = DTM_OK;
    else
        snprintf(why, whysz, "%s", curl_easy_strerror(cc));
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    dtm_buf_free(&msg);
    return rc;
}

static int send_syslog(const struct dtm_conf_channel *ch, const struct dtm_alert *a, char *why,
                       size_t whysz)
{
    struct dtm_buf m;
    char host[256], port[16], name[256];
    struct addrinfo hints, *res = NULL, *ai;
    int p, rc = DTM_EIO, gai;
    if (!strcmp(ch->address, "local")) {
        struct dtm_buf line;
        dtm_buf_init(&line, 4096);
        dtm_buf_printf(&line, "alert id=%lld rule=", (long long)a->id);
        add_line_text(&line, a->rule);
        dtm_buf_addc(&line, " key=");
        add_line_text(&line, a->key);
        dtm_buf_printf(&line, " severity=%s: ", a->severity);
        add_line_text(&line, a->title);
        syslog((int)(ch->facility << 3) | syslog_severity(a->severity), "%s",
               line.p ? line.p : "alert");
        dtm_buf_free(&line);
        return DTM_OK;
    }
    if (dtm_conf_split_addr(ch->address, host, sizeof(host), &p)) {
        snprintf(why, whysz, "bad address");
        return DTM_EINVAL;
    }
    snprintf(port, sizeof(port), "%d", p);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_DGRAM;
    if ((gai = getaddrinfo(host, port, &hints, &res)) != 0) {
        snprintf(why, whysz, "cannot resolve the syslog host: %s", gai_strerror(gai));
        return DTM_EIO;
    }
    hostname_of(name, sizeof(name));
    dtm_buf_init(&m, 8192); /* RFC 5426: receivers take at least 480, should take 2048 */
    dtm_alert_syslog_format(&m, a, (int)ch->facility, name, (long)getpid());
    for (ai = res; ai && !m.err; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (sendto(fd, m.p, m.n, 0, ai->ai_addr, ai->ai_addrlen) == (ssize_t)m.n)
            rc = DTM_OK;
        close(fd);
        if (rc == DTM_OK)
            break;
    }
    if (rc)
        snprintf(why, whysz, "cannot send to the syslog address");
    freeaddrinfo(res);
    dtm_buf_free(&m);
    return rc;
}

/* ---- the delivery thread */

struct item {
    struct dtm_alert a;
    char event[12]; /* fired | resolved */
    char channel[64];
    int64_t attempts;
    int64_t next_at; /* monotonic µs */
    struct item *next;
};

struct dtm_deliverer {
    const struct dtm_conf *const *conf;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct item *head; /* by next_at */
    size_t depth;
    bool stopping;
    struct dtm_store *st;
};

static void insert_sorted(struct dtm_deliverer *d, struct item *it)
{
    struct item **pp = &d->head;
    while (*pp && (*pp)->next_at <= it->next_at)
        pp = &(*pp)->next;
    it->next = *pp;
    *pp = it;
    d->depth++;
}

void dtm_deliver_enqueue(struct dtm_deliverer *d, const struct dtm_alert *a, const char *event,
                         const char *channel, int64_t attempts)
{
    struct item *it;
    if (!d)
        return;
    if (!(it = calloc(1, sizeof(*it)))) {
        dtm_logf(DTM_LOG_ERROR, "alert delivery dropped: out of memory", "\"id\":%lld",
                 (long long)a->id);
        return;
    }
    it->a = *a;
    snprintf(it->channel, sizeof(it->channel), "%s", channel);
    snprintf(it->event, sizeof(it->event), "%s", strcmp(event, "resolved") ? "fired" : "resolved");
    it->attempts = attempts;
    it->next_at = dtm_mono_us();
    pthread_mutex_lock(&d->lock);
    if (d->stopping || d->depth >= PENDING_MAX) {
        pthread_mutex_unlock(&d->lock);
        dtm_logf(DTM_LOG_WARN, "alert delivery left pending (queue full or stopping)",
                 "\"id\":%lld,\"channel\":\"%s\"", (long long)a->id, it->channel);
        free(it);
        return;
    }
    insert_sorted(d, it);
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* The thread's store connection, opened on first use (NULL when it cannot be). */
static struct dtm_store *store_of(struct dtm_deliverer *d)
{
    char err[256];
    if (!d->st && dtm_store_open(*d->conf, &d->st, err, sizeof(err)) != DTM_OK)
        d->st = NULL;
    return d->st;
}

/* A copy of ch whose secrets named "store:NAME" are opened (T4.2): they live sealed in the
 * store, in clear only in this copy, for one attempt. */
static int channel_open(struct dtm_deliverer *d, const struct dtm_conf_channel *ch,
                        struct dtm_conf_channel *out, char *why, size_t whysz)
{
    struct dtm_datakeys *dk = dtm_datakeys_get(*d->conf);
    int rc;
    *out = *ch;
    if ((rc = dtm_secret_resolve(store_of(d), dk, ch->secret, out->secret, sizeof(out->secret), why,
                                 whysz)) ||
        (rc = dtm_secret_resolve(store_of(d), dk, ch->password, out->password,
                                 sizeof(out->password), why, whysz)))
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

static void record(struct dtm_deliverer *d, const struct item *it, const char *status,
                   const char *error)
{
    struct dtm_alert_delivery r;
    int rc;
    if (!store_of(d))
        return;
    memset(&r, 0, sizeof(r));
    r.alert_id = it->a.id;
    snprintf(r.event, sizeof(r.event), "%s", it->event);
    snprintf(r.channel, sizeof(r.channel), "%s", it->channel);
    snprintf(r.status, sizeof(r.status), "%s", status);
    r.attempts = it->attempts;
    snprintf(r.error, sizeof(r.error), "%s", error ? error : "");
    r.updated_at = dtm_now_us();
    if ((rc = d->st->ops->begin(d->st)) == DTM_OK &&
        (rc = d->st->ops->alert_delivery_put(d->st, &r)) == DTM_OK)
        rc = d->st->ops->commit(d->st);
    if (rc) {
        d->st->ops->rollback(d->st);
        dtm_logf(DTM_LOG_WARN, "alert delivery state not stored",
                 "\"id\":%lld,\"channel\":\"%s\",\"error\":\"%s\"", (long long)it->a.id,
                 it->channel, dtm_rc_name(rc));
    }
}

/* One attempt; the item is requeued (backoff) or freed. */
static void attempt(struct dtm_deliverer *d, struct item *it)
{
    const struct dtm_conf *c = *d->conf;
    const struct dtm_conf_channel *ch = NULL;
    struct dtm_conf_channel open;
    char why[160] = "";
    int rc;
    for (size_t i = 0; i < c->nchannels; i++)
        if (!strcmp(c->channels[i].name, it->channel))
            ch = &c->channels[i];
    it->attempts++;
    if (!ch) {
        snprintf(why, sizeof(why), "channel no longer configured");
        rc = DTM_ENOTFOUND;
    } else if ((rc = channel_open(d, ch, &open, why, sizeof(why)))) {
        rc = rc == DTM_ESTORE ? DTM_EIO : DTM_ENOTFOUND; /* a missing secret: no use retrying */
    } else {
        if (!strcmp(open.type, "webhook"))
            rc = send_webhook(&open, &it->a, it->event, why, sizeof(why));
        else if (!strcmp(open.type, "email"))
            rc = send_email(&open, &it->a, why, sizeof(why));
        else
            rc = send_syslog(&open, &it->a, why, sizeof(why));
        OPENSSL_cleanse(&open, sizeof(open));
    }
    /* the reason goes into JSON log lines as is: keep it plain */
    for (char *q = why; *q; q++)
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '\'';
    if (rc == DTM_OK) {
        dtm_logf(DTM_LOG_INFO, "alert delivered",
                 "\"id\":%lld,\"event\":\"%s\",\"channel\":\"%s\",\"attempts\":%lld",
                 (long long)it->a.id, it->event, it->channel, (long long)it->attempts);
        record(d, it, "delivered", NULL);
        free(it);
        return;
    }
    if (it->attempts >= c->alert_max_attempts || rc == DTM_ENOTFOUND) {
        dtm_logf(DTM_LOG_ERROR, "alert delivery failed; giving up",
                 "\"id\":%lld,\"channel\":\"%s\",\"attempts\":%lld,\"error\":\"%s\"",
                 (long long)it->a.id, it->channel, (long long)it->attempts, why);
        record(d, it, "failed", why);
        free(it);
        return;
    }
    {
        int64_t wait = dtm_alert_backoff(c->alert_retry_initial, it->attempts + 1);
        dtm_logf(DTM_LOG_WARN, "alert delivery failed; will retry",
                 "\"id\":%lld,\"channel\":\"%s\",\"attempts\":%lld,\"retry_in_s\":%lld,"
                 "\"error\":\"%s\"",
                 (long long)it->a.id, it->channel, (long long)it->attempts, (long long)wait, why);
        record(d, it, "pending", why);
        it->next_at = dtm_mono_us() + wait * 1000000;
    }
    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        free(it);
        return;
    }
    insert_sorted(d, it);
    pthread_mutex_unlock(&d->lock);
}

static void *run(void *arg)
{
    struct dtm_deliverer *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        int64_t now = dtm_mono_us();
        if (d->head && d->head->next_at <= now) {
            struct item *it = d->head;
            d->head = it->next;
            d->depth--;
            pthread_mutex_unlock(&d->lock);
            attempt(d, it);
            pthread_mutex_lock(&d->lock);
            continue;
        }
        {
            struct timespec until;
            int64_t wait = d->head ? d->head->next_at - now : 1000000;
            wait = DTM_MIN(wait, 1000000);
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += (time_t)(wait / 1000000);
            until.tv_nsec += (long)(wait % 1000000) * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->cond, &d->lock, &until);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int dtm_deliver_start(const struct dtm_conf *const *conf, struct dtm_deliverer **out, char *err,
                      size_t errsz)
{
    struct dtm_deliverer *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errsz, "out of memory");
        return DTM_ENOMEM;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errsz, "cannot initialise libcurl");
        free(d);
        return DTM_EIO;
    }
    d->conf = conf;
    /* T4.2: a secret written in dtm.conf is a secret in clear on disk */
    for (size_t i = 0; i < (*conf)->nchannels; i++) {
        const struct dtm_conf_channel *ch = &(*conf)->channels[i];
        const char *clear = NULL;
        if (ch->secret[0] && strncmp(ch->secret, DTM_SECRET_REF, strlen(DTM_SECRET_REF)))
            clear = "secret";
        else if (ch->password[0] && strncmp(ch->password, DTM_SECRET_REF, strlen(DTM_SECRET_REF)))
            clear = "password";
        if (clear)
            dtm_logf(DTM_LOG_WARN,
                     "an alert channel keeps a secret in clear in dtm.conf: store it sealed with "
                     "`dtm secret set NAME` and write store:NAME instead",
                     "\"channel\":\"%s\",\"key\":\"%s\"", ch->name, clear);
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    openlog("dtm", LOG_PID | LOG_NDELAY, LOG_USER);
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        snprintf(err, errsz, "cannot start the alert delivery thread");
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->cond);
        free(d);
        return DTM_EIO;
    }
    *out = d;
    return DTM_OK;
}

void dtm_deliver_stop(struct dtm_deliverer *d)
{
    struct item *it;
    size_t left = 0;
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    while ((it = d->head)) {
        d->head = it->next;
        free(it);
        left++;
    }
    if (left)
        dtm_logf(DTM_LOG_WARN, "alert deliveries left pending (resumed at the next start)",
                 "\"deliveries\":%zu", left);
    if (d->st)
        d->st->ops->close(d->st);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    free(d);
}
