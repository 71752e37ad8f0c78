#!/usr/bin/python3
"""Deterministic `transactions` rows for the batch ingest benchmark (bench/ingest_batch/run.sh).

usage: gen.py ROWS SEED OUT.ndjson OUT.csv OUT.expect
       gen.py --systems      (prints the 20 system codes the rows carry, one a line)

Writes the same ROWS rows twice: as NDJSON (one ~350-byte JSON object a line, for dtm) and as
headerless CSV in the column order of the PostgreSQL table (for `COPY … (FORMAT csv)`), and the
expected outcome as `name value` lines (rows, valid, duplicates, invalid, distinct_valid_keys).

The same (ROWS, SEED) give byte-identical files (one random stream seeded by SEED, in order).
  - 2 % of the rows (i % 100 in {37, 83}) are exact copies of an earlier valid row: same key,
    same content — a duplicate, never a new record;
  - 1 % (i % 100 == 59) break one rule of src/dict/builtin/transactions.json while every value
    still parses as its PostgreSQL type (so a typed COPY loads them; the checks reject them):
    failed without error_code, channel "fax", finished_at before started_at, an 11-digit
    citizen_id, response_ms < 0, priority "critical";
  - the rest are valid, each with its own key (system_code, txn_id). 20 system codes.
"""
import random
import sys

SYSTEMS = ["BKHCN", "BTC", "BNV", "BYT", "BGDDT", "BCA", "BTP", "BXD", "BNNMT", "BCT",
           "VPCP", "HNI", "HCM", "DNG", "HPG", "CTO", "QNH", "NAN", "THA", "BDG"]
AGENCIES = ["G01.%03d" % k for k in range(1, 41)]
SERVICES = ["1.%06d" % (1000 + 37 * k) for k in range(60)]
CHANNELS = ["web", "web", "web", "mobile", "mobile", "api", "kiosk", "counter", "other"]
REGIONS = ["%02d" % k for k in (1, 2, 4, 6, 8, 10, 11, 12, 14, 15, 17, 19, 20, 22, 24, 25, 26,
                                 27, 30, 31, 33, 34, 35, 36, 37, 38, 40, 42, 44, 45, 46, 48,
                                 49, 51, 52, 54, 56, 58, 60, 62, 64, 66, 67, 68, 70, 72, 74,
                                 75, 77, 79, 80, 82, 83, 84, 86, 87, 89, 91, 92, 93, 94, 95, 96)]
PRIORITIES = ["low", "normal", "normal", "normal", "high", "urgent"]
CLASSES = ["public", "internal", "internal", "confidential"]
ERRORS = [("E_TIMEOUT", "Hệ thống dịch vụ công không phản hồi trong thời gian quy định"),
          ("E_AUTH", "Xác thực tài khoản định danh điện tử không thành công"),
          ("E_DATA", "Hồ sơ thiếu thành phần bắt buộc theo quy định của thủ tục"),
          ("E_PAYMENT", "Giao dịch thanh toán trực tuyến bị từ chối bởi ngân hàng"),
          ("E_UPSTREAM", "Cơ sở dữ liệu quốc gia về dân cư tạm thời không truy cập được")]
BASE = 1793466000  # 2026-11-01T00:00:00+07:00; rows spread over 30 days
DAY = 86400
KIND_DUP = (37, 83)
KIND_BAD = 59

# CSV column order == the PostgreSQL staging/main table (run.sh)
COLS = ["system_code", "txn_id", "agency_code", "service_code", "channel", "status",
        "error_code", "error_reason", "started_at", "finished_at", "response_ms", "citizen_id",
        "business_id", "amount", "region_code", "priority", "classification"]


def fmt_time(t, ms):
    """RFC 3339 in UTC+07:00, t = unix seconds, ms = milliseconds 0..999."""
    s = t + 7 * 3600
    days, rem = divmod(s, DAY)
    # civil from days (Howard Hinnant), days since 1970-01-01
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    hh, rem = divmod(rem, 3600)
    mm, ss = divmod(rem, 60)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+07:00" % (y, m, d, hh, mm, ss, ms)


def row(rnd, i):
    """The row of index i as a list of values in COLS order (None = absent), drawing from the
    stream rnd (a random.Random(SEED).random shared by all rows, in order)."""
    sysc = SYSTEMS[i % 20]
    txn = "%s-TX-%010d-%04d" % (sysc, i, int(rnd() * 10000))
    st = rnd()
    status = "success" if st < 0.90 else ("failed" if st < 0.97 else "pending")
    err_code = err_reason = None
    if status == "failed":
        err_code, err_reason = ERRORS[int(rnd() * len(ERRORS))]
    t0 = BASE + (i * 1297) % (30 * DAY)
    ms0 = int(rnd() * 1000)
    resp = 80 + int(rnd() * rnd() * 6000)
    t1ms = t0 * 1000 + ms0 + resp
    citizen = "%012d" % int(rnd() * 10 ** 12) if rnd() < 0.6 else None
    business = "%010d" % int(rnd() * 10 ** 10) if rnd() < 0.15 else None
    amount = "%d" % (1000 * int(rnd() * 500)) if rnd() < 0.4 else "0"
    v = [sysc, txn, AGENCIES[int(rnd() * 40)], SERVICES[int(rnd() * 60)],
         CHANNELS[int(rnd() * 9)], status, err_code, err_reason,
         fmt_time(t0, ms0), fmt_time(t1ms // 1000, t1ms % 1000), resp, citizen, business,
         amount, REGIONS[int(rnd() * len(REGIONS))], PRIORITIES[int(rnd() * 6)],
         CLASSES[int(rnd() * 4)]]
    if i % 100 == KIND_BAD:
        k = (i // 100) % 6
        if k == 0:    # failed without error_code (rule)
            v[5], v[6], v[7] = "failed", None, "Không rõ nguyên nhân"
        elif k == 1:  # not one of the enum values
            v[4] = "fax"
        elif k == 2:  # finished_at before started_at (rule)
            v[9] = fmt_time(t0 - 5, 0)
        elif k == 3:  # citizen_id of 11 digits (pattern)
            v[11] = "%011d" % int(rnd() * 10 ** 11)
        elif k == 4:  # response_ms < 0 (min)
            v[10] = -resp
        else:         # not one of the enum values
            v[15] = "critical"
    return v


# No generated value holds '"', '\\', ',' or a control character (checked at start), so neither
# format needs escaping; response_ms (index 10) is the only number.
NAMES = ['"%s":' % c for c in COLS]


def to_ndjson(v):
    return "{" + ",".join(NAMES[k] + ('"' + x + '"' if k != 10 else str(x))
                          for k, x in enumerate(v) if x is not None) + "}\n"


def to_csv(v):
    # an unquoted empty field is NULL for COPY (FORMAT csv)
    return ",".join("" if x is None else str(x) for x in v) + "\n"


def check_plain():
    texts = SYSTEMS + AGENCIES + SERVICES + CHANNELS + REGIONS + PRIORITIES + CLASSES
    texts += [t for e in ERRORS for t in e] + ["Không rõ nguyên nhân"]
    for t in texts:
        assert t and not any(c in t for c in ',"\\') and t.isprintable(), t


def sources(seed, n):
    """{index of a duplicate: index of the earlier valid row it copies}."""
    r = random.Random(seed * 7919 + 1)
    out = {}
    for i in range(100, n):
        if i % 100 in KIND_DUP:
            j = int(r.random() * i)
            while j % 100 in KIND_DUP or j % 100 == KIND_BAD:
                j -= 1
            out[i] = j
    return out


def main():
    if sys.argv[1:] == ["--systems"]:
        print("\n".join(SYSTEMS))
        return
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    check_plain()
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    dup_of = sources(seed, n)
    keep = {j: None for j in dup_of.values()}  # rows to copy later, as (ndjson, csv)
    rnd = random.Random(seed).random
    nd = open(sys.argv[3], "w", encoding="utf-8", newline="\n", buffering=1 << 20)
    cs = open(sys.argv[4], "w", encoding="utf-8", newline="\n", buffering=1 << 20)
    valid = dups = bad = 0
    for i in range(n):
        j = dup_of.get(i)
        if j is not None:
            a, b = keep[j]
            dups += 1
        else:
            v = row(rnd, i)
            a, b = to_ndjson(v), to_csv(v)
            if i in keep:
                keep[i] = (a, b)
            if i % 100 == KIND_BAD:
                bad += 1
            else:
                valid += 1
        nd.write(a)
        cs.write(b)
    nd.close()
    cs.close()
    with open(sys.argv[5], "w") as f:
        f.write("rows %d\nvalid %d\nduplicates %d\ninvalid %d\ndistinct_valid_keys %d\n"
                % (n, valid, dups, bad, valid))


if __name__ == "__main__":
    main()
