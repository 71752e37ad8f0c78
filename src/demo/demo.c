/* demo — generates the demo picture of `dtm init --demo` (CONTRACT §9) as NDJSON files, one per
 * built-in dataset, that the caller imports through the real ingest pipeline.
 *
 * How the transactions are laid out: every hour of every day is a cell whose weight is the sum
 * over the systems of volume × day factor (weekday, holiday, trend, noise, seasonality of the
 * system's field) × the hour's weight in the system's daily profile (office, online, machine).
 * The requested count is split over the cells by cumulative rounding (so the total is exact);
 * inside a cell the start times are sorted uniforms (exponential spacings, two passes over a
 * separate PRNG stream: no arrays), so the file is in time order and memory stays flat at any
 * count. Each record then picks its system by the cell's weights, a service, an agency, a
 * channel, an outcome and a response time. Valid records are counted per system × service × day;
 * service_stats is written from those counts, so it matches exactly except for the few rows
 * altered on purpose.
 *
 * Determinism: xoshiro256** seeded by splitmix64, one stream per purpose, and own log/exp on
 * basic IEEE arithmetic (no libm transcendental, whose last bits may differ between libms). */
#include "demo/demo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* ---- PRNG */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double rng_u01(struct rng *r) /* [0, 1) */
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static uint32_t rng_below(struct rng *r, uint32_t n) /* [0, n) */
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static bool rng_chance(struct rng *r, double p)
{
    return rng_u01(r) < p;
}

/* 1/k! for k = 0..13 (e^r) and 1/(2k+1) for k = 0..8 (atanh), as exact decimal literals. */
static const double inv_fact[14] = {1.0,
                                    1.0,
                                    0.5,
                                    0.16666666666666666,
                                    0.041666666666666664,
                                    0.008333333333333333,
                                    0.001388888888888889,
                                    0.0001984126984126984,
                                    2.48015873015873e-05,
                                    2.7557319223985893e-06,
                                    2.755731922398589e-07,
                                    2.505210838544172e-08,
                                    2.08767569878681e-09,
                                    1.6059043836821613e-10};
static const double inv_odd[9] = {1.0,
                                  0.3333333333333333,
                                  0.2,
                                  0.14285714285714285,
                                  0.1111111111111111,
                                  0.09090909090909091,
                                  0.07692307692307693,
                                  0.06666666666666667,
                                  0.058823529411764705};

/* Natural logarithm, x > 0: x = m·2^e with m in [√½, √2), log m = 2·atanh((m-1)/(m+1)). */
static double xlog(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2;
        e--;
    }
    double s = (m - 1) / (m + 1), s2 = s * s, series = inv_odd[8];
    for (int k = 7; k >= 0; k--)
        series = series * s2 + inv_odd[k];
    return e * 0.69314718055994530942 + 2 * s * series;
}

/* e^x for |x| < 700: x = k·ln2 + r with |r| <= ln2/2, Taylor to r^13. */
static double xexp(double x)
{
    double k = floor(x / 0.69314718055994530942 + 0.5);
    double r = x - k * 0.69314718055994530942, p = inv_fact[13];
    for (int i = 12; i >= 0; i--)
        p = p * r + inv_fact[i];
    return ldexp(p, (int)k);
}

static double rng_normal(struct rng *r) /* Marsaglia's polar method (one of the pair) */
{
    double u, v, s;
    do {
        u = 2 * rng_u01(r) - 1;
        v = 2 * rng_u01(r) - 1;
        s = u * u + v * v;
    } while (s >= 1 || s == 0);
    return u * sqrt(-2 * xlog(s) / s);
}

static double rng_exp1(struct rng *r)
{
    return -xlog(1.0 - rng_u01(r));
}

static double rng_lognormal(struct rng *r, double median, double sigma)
{
    return median * xexp(sigma * rng_normal(r));
}

/* Index i with cum[i-1] <= u < cum[i] (cum ascending, u in [0, cum[n-1])). */
static size_t pick_cum(const double *cum, size_t n, double u)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u < cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static size_t rng_pick(struct rng *r, const double *cum, size_t n)
{
    return pick_cum(cum, n, rng_u01(r) * cum[n - 1]);
}

/* ---- the catalogue: services, systems, regions, errors. Service codes follow the style of the
 * national database of administrative procedures ("1.001193") or are short system codes; they
 * are illustrative, not an extract of that database. */

enum {
    SV_CIT = 1,  /* carries a citizen's personal identification number */
    SV_BIZ = 2,  /* carries an enterprise code */
    SV_FEE = 4,  /* fixed fee (amount = fee) */
    SV_PAY = 8,  /* variable payment (amount log-normal around fee) */
    SV_SLOW = 16 /* pending more often (a case handled over days) */
};

struct service {
    const char *code;
    const char *name;
    unsigned flags;
    int32_t fee;  /* VND */
    double share; /* relative popularity within its system */
    double speed; /* response-time multiplier */
};

#define S(code, name, flags, fee, share, speed)                                                    \
    {                                                                                              \
        code, name, flags, fee, share, speed                                                       \
    }

static const struct service svc_portal[] = {
    S("DVCQG.TTTT", "Thanh toán trực tuyến phí, lệ phí", SV_CIT | SV_PAY, 150000, 30, 0.6),
    S("1.001193", "Liên thông đăng ký khai sinh, đăng ký thường trú, cấp thẻ BHYT cho trẻ em",
      SV_CIT | SV_SLOW, 0, 10, 1.4),
    S("1.001764", "Liên thông đăng ký khai tử, xóa đăng ký thường trú, trợ cấp mai táng",
      SV_CIT | SV_SLOW, 0, 3, 1.4),
    S("2.001023", "Nộp phạt vi phạm hành chính trực tuyến", SV_CIT | SV_PAY, 800000, 12, 0.8),
    S("1.002809", "Đổi giấy phép lái xe trực tuyến", SV_CIT | SV_FEE, 135000, 10, 1.0),
    S("DVCQG.PAKN", "Tiếp nhận phản ánh, kiến nghị", SV_CIT, 0, 5, 0.7),
    S("DVCQG.TRACUU", "Tra cứu tình trạng hồ sơ", SV_CIT, 0, 30, 0.3),
};
static const struct service svc_police[] = {
    S("1.001612", "Đăng ký thường trú", SV_CIT | SV_SLOW, 0, 18, 1.0),
    S("1.001797", "Đăng ký tạm trú", SV_CIT, 0, 22, 0.9),
    S("1.000101", "Cấp thẻ căn cước", SV_CIT | SV_FEE, 30000, 14, 1.2),
    S("2.001153", "Cấp hộ chiếu phổ thông trong nước", SV_CIT | SV_FEE | SV_SLOW, 200000, 8, 1.3),
    S("1.002304", "Đăng ký, cấp biển số xe lần đầu", SV_CIT | SV_FEE, 150000, 9, 1.1),
    S("1.000091", "Khai báo tạm vắng", SV_CIT, 0, 4, 0.8),
    S("BCA.XPVPHC", "Nộp phạt vi phạm hành chính lĩnh vực giao thông", SV_CIT | SV_PAY, 1000000, 10,
      0.7),
    S("1.004194", "Xác nhận thông tin về cư trú", SV_CIT, 0, 10, 0.6),
};
static const struct service svc_tax[] = {
    S("1.007551", "Khai thuế giá trị gia tăng", SV_BIZ, 0, 20, 1.0),
    S("1.007552", "Nộp thuế điện tử", SV_BIZ | SV_PAY, 12000000, 25, 0.8),
    S("1.007553", "Quyết toán thuế thu nhập cá nhân", SV_CIT | SV_PAY, 2500000, 12, 1.2),
    S("1.007554", "Đăng ký thuế lần đầu đối với cá nhân", SV_CIT, 0, 5, 0.9),
    S("HDDT.CAPMA", "Cấp mã hóa đơn điện tử", SV_BIZ | SV_PAY, 5500000, 40, 0.3),
    S("1.007556", "Hoàn thuế giá trị gia tăng", SV_BIZ | SV_SLOW, 0, 2, 1.5),
    S("1.007557", "Nộp lệ phí trước bạ", SV_CIT | SV_PAY, 20000000, 6, 0.9),
};
static const struct service svc_customs[] = {
    S("VNACCS.IDA", "Khai báo tờ khai hàng hóa nhập khẩu", SV_BIZ | SV_PAY, 45000000, 30, 1.0),
    S("VNACCS.EDA", "Khai báo tờ khai hàng hóa xuất khẩu", SV_BIZ, 0, 28, 1.0),
    S("VNACCS.IDC", "Đăng ký chính thức tờ khai nhập khẩu", SV_BIZ, 0, 15, 0.8),
    S("VNACCS.MSB", "Khai báo thông tin hàng hóa vận chuyển (manifest)", SV_BIZ, 0, 10, 1.2),
    S("HQ.NOPTHUE", "Nộp thuế xuất nhập khẩu điện tử", SV_BIZ | SV_PAY, 60000000, 12, 0.7),
    S("HQ.CO", "Tiếp nhận chứng từ chứng nhận xuất xứ", SV_BIZ, 0, 5, 0.9),
};
static const struct service svc_bizreg[] = {
    S("1.010025", "Đăng ký thành lập doanh nghiệp", SV_CIT | SV_FEE | SV_SLOW, 50000, 20, 1.2),
    S("2.001610", "Đăng ký thay đổi nội dung đăng ký doanh nghiệp", SV_BIZ | SV_FEE, 50000, 30,
      1.0),
    S("2.001583", "Thông báo tạm ngừng kinh doanh", SV_BIZ, 0, 10, 0.8),
    S("2.001199", "Giải thể doanh nghiệp", SV_BIZ | SV_SLOW, 0, 5, 1.0),
    S("DKKD.TTDN", "Cung cấp thông tin doanh nghiệp", SV_BIZ | SV_FEE, 20000, 15, 0.3),
};
static const struct service svc_civil[] = {
    S("1.001193", "Đăng ký khai sinh", SV_CIT, 0, 30, 1.0),
    S("1.000894", "Đăng ký kết hôn", SV_CIT | SV_SLOW, 0, 12, 1.1),
    S("1.000656", "Đăng ký khai tử", SV_CIT, 0, 8, 1.0),
    S("2.000635", "Cấp bản sao trích lục hộ tịch", SV_CIT | SV_FEE, 8000, 18, 0.6),
    S("1.004873", "Cấp phiếu lý lịch tư pháp", SV_CIT | SV_FEE | SV_SLOW, 200000, 20, 1.3),
    S("1.001022", "Xác nhận tình trạng hôn nhân", SV_CIT, 0, 12, 0.9),
};
static const struct service svc_health[] = {
    S("BYT.KCB", "Gửi dữ liệu khám bệnh, chữa bệnh", SV_CIT, 0, 45, 0.8),
    S("BYT.DONTHUOC", "Đơn thuốc điện tử", SV_CIT, 0, 30, 0.6),
    S("BYT.GKSK", "Giấy khám sức khỏe người lái xe", SV_CIT | SV_FEE, 300000, 8, 1.0),
    S("BYT.GCS", "Giấy chứng sinh điện tử", SV_CIT, 0, 5, 1.0),
    S("BYT.TIEMCHUNG", "Cập nhật sổ tiêm chủng điện tử", SV_CIT, 0, 12, 0.7),
};
static const struct service svc_social[] = {
    S("1.000027", "Đăng ký, điều chỉnh đóng bảo hiểm xã hội, bảo hiểm y tế", SV_BIZ, 0, 20, 1.1),
    S("1.000046", "Cấp lại, đổi thẻ bảo hiểm y tế", SV_CIT, 0, 18, 0.9),
    S("1.000092", "Gia hạn thẻ bảo hiểm y tế theo hộ gia đình", SV_CIT | SV_PAY, 1263600, 15, 0.9),
    S("1.000093", "Đóng bảo hiểm xã hội tự nguyện", SV_CIT | SV_PAY, 990000, 8, 0.9),
    S("1.000058", "Giải quyết hưởng chế độ ốm đau, thai sản", SV_CIT | SV_SLOW, 0, 10, 1.3),
    S("BHXH.TRACUU", "Tra cứu quá trình tham gia bảo hiểm xã hội", SV_CIT, 0, 30, 0.3),
    S("1.000016", "Giải quyết hưởng bảo hiểm xã hội một lần", SV_CIT | SV_SLOW, 0, 4, 1.4),
};
static const struct service svc_edu[] = {
    S("1.005142", "Đăng ký xét tuyển đại học", SV_CIT | SV_PAY, 60000, 25, 1.0),
    S("1.005088", "Đăng ký dự thi tốt nghiệp trung học phổ thông", SV_CIT, 0, 15, 1.0),
    S("1.005094", "Cấp bản sao văn bằng, chứng chỉ", SV_CIT | SV_FEE, 20000, 8, 0.9),
    S("BGD.TRACUU", "Tra cứu kết quả thi", SV_CIT, 0, 30, 0.3),
    S("1.005095", "Chỉnh sửa nội dung văn bằng, chứng chỉ", SV_CIT | SV_SLOW, 0, 3, 1.1),
};
static const struct service svc_land[] = {
    S("1.004227", "Đăng ký biến động quyền sử dụng đất, tài sản gắn liền với đất",
      SV_CIT | SV_PAY | SV_SLOW, 500000, 25, 1.3),
    S("1.004221", "Cấp Giấy chứng nhận quyền sử dụng đất lần đầu", SV_CIT | SV_FEE | SV_SLOW,
      100000, 10, 1.5),
    S("1.004203", "Cung cấp thông tin, dữ liệu đất đai", SV_CIT | SV_FEE, 50000, 25, 0.6),
    S("1.005398", "Cấp giấy phép môi trường", SV_BIZ | SV_SLOW, 0, 3, 1.4),
    S("1.004238", "Đăng ký thế chấp quyền sử dụng đất", SV_CIT | SV_FEE, 80000, 15, 1.0),
};
static const struct service svc_driving[] = {
    S("1.002809", "Đổi giấy phép lái xe", SV_CIT | SV_FEE, 135000, 30, 1.0),
    S("1.002804", "Cấp lại giấy phép lái xe", SV_CIT | SV_FEE, 135000, 12, 1.0),
    S("1.002835", "Cấp giấy phép lái xe quốc tế", SV_CIT | SV_FEE, 135000, 5, 1.0),
    S("BXD.DANGKIEM", "Đăng kiểm phương tiện giao thông cơ giới đường bộ", SV_BIZ | SV_FEE, 340000,
      15, 1.1),
    S("BXD.TRACUU", "Tra cứu giấy phép lái xe", SV_CIT, 0, 20, 0.3),
};
static const struct service svc_trade[] = {
    S("2.000081", "Cấp Giấy chứng nhận xuất xứ hàng hóa mẫu D", SV_BIZ, 0, 25, 1.0),
    S("2.000093", "Cấp Giấy chứng nhận xuất xứ hàng hóa mẫu E", SV_BIZ, 0, 20, 1.0),
    S("2.000187", "Cấp Giấy chứng nhận xuất xứ hàng hóa mẫu EUR.1", SV_BIZ, 0, 12, 1.0),
    S("2.000449", "Cấp giấy phép nhập khẩu tự động", SV_BIZ | SV_SLOW, 0, 6, 1.2),
    S("2.000220", "Cấp Giấy phép bán lẻ rượu", SV_BIZ | SV_FEE | SV_SLOW, 1200000, 3, 1.2),
};
static const struct service svc_province[] = {
    S("1.001193", "Đăng ký khai sinh", SV_CIT, 0, 18, 1.0),
    S("2.000635", "Cấp bản sao trích lục hộ tịch", SV_CIT | SV_FEE, 8000, 12, 0.6),
    S("2.000815", "Chứng thực bản sao từ bản chính giấy tờ, văn bản", SV_CIT | SV_PAY, 10000, 25,
      0.7),
    S("1.004227", "Đăng ký biến động đất đai", SV_CIT | SV_PAY | SV_SLOW, 500000, 12, 1.3),
    S("1.009994", "Cấp giấy phép xây dựng nhà ở riêng lẻ", SV_CIT | SV_FEE | SV_SLOW, 75000, 6,
      1.4),
    S("2.000720", "Đăng ký thành lập hộ kinh doanh", SV_CIT | SV_FEE, 100000, 8, 1.0),
    S("1.004946", "Cấp phiếu lý lịch tư pháp", SV_CIT | SV_FEE | SV_SLOW, 200000, 6, 1.2),
    S("1.001776", "Trợ cấp xã hội hằng tháng", SV_CIT | SV_SLOW, 0, 4, 1.2),
    S("2.001711", "Cấp giấy phép kinh doanh vận tải bằng xe ô tô", SV_BIZ | SV_FEE, 200000, 3, 1.1),
    S("1.000894", "Đăng ký kết hôn", SV_CIT, 0, 6, 1.0),
};
#undef S

#define MAX_SVC 12
#define MAX_AG 6
#define NSYS 25

enum cat {
    CAT_PORTAL,
    CAT_POLICE,
    CAT_TAX,
    CAT_CUSTOMS,
    CAT_BIZREG,
    CAT_CIVIL,
    CAT_HEALTH,
    CAT_SOCIAL,
    CAT_EDU,
    CAT_LAND,
    CAT_DRIVING,
    CAT_TRADE,
    CAT_PROVINCE,
};

static const struct {
    const struct service *s;
    size_t n;
} catalogue[] = {
    [CAT_PORTAL] = {svc_portal, DTM_ARRAY_LEN(svc_portal)},
    [CAT_POLICE] = {svc_police, DTM_ARRAY_LEN(svc_police)},
    [CAT_TAX] = {svc_tax, DTM_ARRAY_LEN(svc_tax)},
    [CAT_CUSTOMS] = {svc_customs, DTM_ARRAY_LEN(svc_customs)},
    [CAT_BIZREG] = {svc_bizreg, DTM_ARRAY_LEN(svc_bizreg)},
    [CAT_CIVIL] = {svc_civil, DTM_ARRAY_LEN(svc_civil)},
    [CAT_HEALTH] = {svc_health, DTM_ARRAY_LEN(svc_health)},
    [CAT_SOCIAL] = {svc_social, DTM_ARRAY_LEN(svc_social)},
    [CAT_EDU] = {svc_edu, DTM_ARRAY_LEN(svc_edu)},
    [CAT_LAND] = {svc_land, DTM_ARRAY_LEN(svc_land)},
    [CAT_DRIVING] = {svc_driving, DTM_ARRAY_LEN(svc_driving)},
    [CAT_TRADE] = {svc_trade, DTM_ARRAY_LEN(svc_trade)},
    [CAT_PROVINCE] = {svc_province, DTM_ARRAY_LEN(svc_province)},
};

enum profile { P_OFFICE, P_ONLINE, P_MACHINE };
enum channel { CH_WEB, CH_MOBILE, CH_API, CH_KIOSK, CH_COUNTER, CH_OTHER, NCH };
static const char *const channel_name[NCH] = {"web", "mobile", "api", "kiosk", "counter", "other"};

struct system_def {
    const char *code, *name, *org;
    const char *abbr;   /* for document numbers: "BCA", "UBND" */
    const char *place;  /* provinces: "thành phố Hà Nội"; NULL for national systems */
    const char *region; /* provinces: administrative unit code; NULL = the whole country */
    const char *root;   /* last group of the agency identifiers: "G02", "H26" */
    int unit;           /* department number of a ministry system within its ministry */
    enum cat cat;
    enum profile profile;
    double volume;    /* relative share of the transactions */
    double fail;      /* baseline failure rate */
    double median_ms; /* response-time level */
    double sigma;
    uint8_t chan[NCH];                /* channel mix, percent */
    bool english;                     /* error reasons in English (machine-to-machine systems) */
    const char *partner, *partner_op; /* main data-sharing peer (connection_logs) */
};

#define PROV_CHAN                                                                                  \
    {                                                                                              \
        45, 15, 5, 5, 28, 2                                                                        \
    }
/* The aggregator comes first: the others name it as parent. Index constants below. */
static const struct system_def system_defs[NSYS] = {
    {"DVCQG",
     "Cổng Dịch vụ công quốc gia",
     "Văn phòng Chính phủ",
     "VPCP",
     NULL,
     NULL,
     "G01",
     0,
     CAT_PORTAL,
     P_ONLINE,
     10,
     0.045,
     450,
     0.7,
     {55, 35, 5, 2, 0, 3},
     false,
     "NDXP",
     "DongBoHoSo"},
    {"BCA-DVC",
     "Cổng dịch vụ công Bộ Công an",
     "Bộ Công an",
     "BCA",
     NULL,
     NULL,
     "G02",
     6,
     CAT_POLICE,
     P_ONLINE,
     14,
     0.05,
     380,
     0.75,
     {40, 48, 5, 2, 5, 0},
     false,
     "BTP-HT",
     "LienThongKhaiSinhThuongTru"},
    {"BTC-THUE",
     "Hệ thống thuế điện tử eTax",
     "Cục Thuế, Bộ Tài chính",
     "BTC",
     NULL,
     NULL,
     "G03",
     15,
     CAT_TAX,
     P_ONLINE,
     9,
     0.03,
     300,
     0.6,
     {50, 20, 28, 0, 2, 0},
     false,
     "BTC-DKKD",
     "DongBoMaSoThue"},
    {"BTC-HQ",
     "Hệ thống thông quan điện tử VNACCS/VCIS",
     "Cục Hải quan, Bộ Tài chính",
     "BTC",
     NULL,
     NULL,
     "G03",
     16,
     CAT_CUSTOMS,
     P_MACHINE,
     5,
     0.025,
     220,
     0.5,
     {4, 0, 96, 0, 0, 0},
     true,
     "BCT-ECOSYS",
     "NSW.TraoDoiCO"},
    {"BTC-DKKD",
     "Hệ thống thông tin quốc gia về đăng ký doanh nghiệp",
     "Cục Quản lý đăng ký kinh doanh, Bộ Tài chính",
     "BTC",
     NULL,
     NULL,
     "G03",
     21,
     CAT_BIZREG,
     P_ONLINE,
     2,
     0.04,
     520,
     0.7,
     {80, 5, 10, 0, 5, 0},
     false,
     "BTC-THUE",
     "DongBoMaSoThue"},
    {"BTP-HT",
     "Hệ thống thông tin đăng ký và quản lý hộ tịch",
     "Bộ Tư pháp",
     "BTP",
     NULL,
     NULL,
     "G04",
     3,
     CAT_CIVIL,
     P_OFFICE,
     3,
     0.035,
     600,
     0.7,
     {40, 15, 5, 5, 35, 0},
     false,
     "BCA-DVC",
     "LienThongKhaiSinhThuongTru"},
    {"BYT-HSSK",
     "Hệ thống hồ sơ sức khỏe điện tử",
     "Bộ Y tế",
     "BYT",
     NULL,
     NULL,
     "G05",
     8,
     CAT_HEALTH,
     P_MACHINE,
     4,
     0.02,
     250,
     0.6,
     {15, 25, 60, 0, 0, 0},
     true,
     "BHXH-DVC",
     "GiamDinhBHYT"},
    {"BHXH-DVC",
     "Cổng dịch vụ công Bảo hiểm xã hội Việt Nam",
     "Bảo hiểm xã hội Việt Nam",
     "BHXH",
     NULL,
     NULL,
     "G06",
     1,
     CAT_SOCIAL,
     P_ONLINE,
     10,
     0.04,
     420,
     0.7,
     {40, 40, 15, 0, 5, 0},
     false,
     "BYT-HSSK",
     "GiamDinhBHYT"},
    {"BGDDT-TS",
     "Hệ thống hỗ trợ tuyển sinh",
     "Bộ Giáo dục và Đào tạo",
     "BGDĐT",
     NULL,
     NULL,
     "G07",
     4,
     CAT_EDU,
     P_ONLINE,
     2,
     0.03,
     350,
     0.65,
     {60, 37, 3, 0, 0, 0},
     false,
     "CSDLQGDC",
     "XacThucThiSinh"},
    {"BNNMT-DD",
     "Hệ thống thông tin đất đai quốc gia",
     "Bộ Nông nghiệp và Môi trường",
     "BNNMT",
     NULL,
     NULL,
     "G08",
     11,
     CAT_LAND,
     P_OFFICE,
     1.5,
     0.06,
     900,
     0.8,
     {30, 5, 25, 0, 40, 0},
     false,
     "BTC-THUE",
     "LienThongNghiaVuTaiChinhDatDai"},
    {"BXD-GPLX",
     "Hệ thống quản lý giấy phép lái xe",
     "Cục Đường bộ Việt Nam, Bộ Xây dựng",
     "BXD",
     NULL,
     NULL,
     "G09",
     7,
     CAT_DRIVING,
     P_ONLINE,
     2.5,
     0.035,
     500,
     0.7,
     {50, 30, 5, 5, 10, 0},
     false,
     "BYT-HSSK",
     "GiayKhamSucKhoeLaiXe"},
    {"BCT-ECOSYS",
     "Hệ thống quản lý và cấp chứng nhận xuất xứ điện tử eCoSys",
     "Bộ Công Thương",
     "BCT",
     NULL,
     NULL,
     "G10",
     5,
     CAT_TRADE,
     P_MACHINE,
     1,
     0.03,
     400,
     0.6,
     {70, 0, 30, 0, 0, 0},
     true,
     "BTC-HQ",
     "NSW.TraoDoiCO"},
    {"HNI-IGATE", "Hệ thống thông tin giải quyết thủ tục hành chính thành phố Hà Nội",
     "Ủy ban nhân dân thành phố Hà Nội", "UBND", "thành phố Hà Nội", "01", "H26", 0, CAT_PROVINCE,
     P_OFFICE, 8, 0.04, 700, 0.75, PROV_CHAN, false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"HCM-DVC", "Cổng dịch vụ công Thành phố Hồ Chí Minh", "Ủy ban nhân dân Thành phố Hồ Chí Minh",
     "UBND", "Thành phố Hồ Chí Minh", "79", "H29", 0, CAT_PROVINCE, P_OFFICE, 9, 0.035, 650, 0.75,
     PROV_CHAN, false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"DNG-DVC", "Cổng dịch vụ công thành phố Đà Nẵng", "Ủy ban nhân dân thành phố Đà Nẵng", "UBND",
     "thành phố Đà Nẵng", "48", "H17", 0, CAT_PROVINCE, P_OFFICE, 2.5, 0.025, 500, 0.7, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"HPG-DVC", "Cổng dịch vụ công thành phố Hải Phòng", "Ủy ban nhân dân thành phố Hải Phòng",
     "UBND", "thành phố Hải Phòng", "31", "H27", 0, CAT_PROVINCE, P_OFFICE, 3, 0.035, 650, 0.75,
     PROV_CHAN, false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"CTO-DVC", "Cổng dịch vụ công thành phố Cần Thơ", "Ủy ban nhân dân thành phố Cần Thơ", "UBND",
     "thành phố Cần Thơ", "92", "H13", 0, CAT_PROVINCE, P_OFFICE, 1.5, 0.045, 750, 0.8, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"QNH-DVC", "Cổng dịch vụ công tỉnh Quảng Ninh", "Ủy ban nhân dân tỉnh Quảng Ninh", "UBND",
     "tỉnh Quảng Ninh", "22", "H40", 0, CAT_PROVINCE, P_OFFICE, 2, 0.03, 600, 0.7, PROV_CHAN, false,
     "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"THA-DVC", "Cổng dịch vụ công tỉnh Thanh Hóa", "Ủy ban nhân dân tỉnh Thanh Hóa", "UBND",
     "tỉnh Thanh Hóa", "38", "H56", 0, CAT_PROVINCE, P_OFFICE, 2.5, 0.05, 800, 0.8, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"NAN-DVC", "Cổng dịch vụ công tỉnh Nghệ An", "Ủy ban nhân dân tỉnh Nghệ An", "UBND",
     "tỉnh Nghệ An", "40", "H43", 0, CAT_PROVINCE, P_OFFICE, 2.5, 0.06, 850, 0.85, PROV_CHAN, false,
     "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"KHA-DVC", "Cổng dịch vụ công tỉnh Khánh Hòa", "Ủy ban nhân dân tỉnh Khánh Hòa", "UBND",
     "tỉnh Khánh Hòa", "56", "H34", 0, CAT_PROVINCE, P_OFFICE, 1.5, 0.04, 650, 0.75, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"DNI-DVC", "Cổng dịch vụ công tỉnh Đồng Nai", "Ủy ban nhân dân tỉnh Đồng Nai", "UBND",
     "tỉnh Đồng Nai", "75", "H19", 0, CAT_PROVINCE, P_OFFICE, 2.5, 0.045, 700, 0.75, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"BNH-DVC", "Cổng dịch vụ công tỉnh Bắc Ninh", "Ủy ban nhân dân tỉnh Bắc Ninh", "UBND",
     "tỉnh Bắc Ninh", "27", "H07", 0, CAT_PROVINCE, P_OFFICE, 2, 0.035, 600, 0.7, PROV_CHAN, false,
     "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"LDG-DVC", "Cổng dịch vụ công tỉnh Lâm Đồng", "Ủy ban nhân dân tỉnh Lâm Đồng", "UBND",
     "tỉnh Lâm Đồng", "68", "H38", 0, CAT_PROVINCE, P_OFFICE, 1.2, 0.07, 900, 0.85, PROV_CHAN,
     false, "CSDLQGDC", "TraCuuThongTinCongDan"},
    {"HUE-DVC", "Cổng dịch vụ công thành phố Huế", "Ủy ban nhân dân thành phố Huế", "UBND",
     "thành phố Huế", "46", "H57", 0, CAT_PROVINCE, P_OFFICE, 1.2, 0.03, 550, 0.7, PROV_CHAN, false,
     "CSDLQGDC", "TraCuuThongTinCongDan"},
};
#undef PROV_CHAN

enum {
    SYS_PORTAL = 0,
    SYS_BHXH = 7,
    SYS_QUALITY = 19, /* NAN-DVC: some rows invalid, some re-sent */
    SYS_OFFLINE = 23, /* LDG-DVC: went offline about 15 days before the end */
};

/* Province codes of the administrative units (region_code, first digits of personal
 * identification numbers) with a rough population weight for the national systems. */
static const struct {
    const char *code;
    double pop;
} regions[] = {
    {"01", 8.6}, {"79", 9.5}, {"48", 1.2}, {"31", 2.1}, {"92", 1.3}, {"22", 1.4}, {"38", 3.7},
    {"40", 3.4}, {"56", 1.3}, {"75", 3.3}, {"27", 1.5}, {"68", 1.3}, {"46", 1.2}, {"24", 1.9},
    {"26", 1.2}, {"30", 1.9}, {"33", 1.3}, {"34", 1.9}, {"36", 1.9}, {"42", 1.3}, {"52", 1.6},
    {"66", 1.9}, {"74", 2.6}, {"77", 1.2}, {"87", 1.6}, {"89", 1.9}, {"91", 1.8}, {"96", 1.2},
    {"51", 1.2}, {"64", 1.5}, {"25", 1.5}, {"19", 1.3}, {"14", 1.3}, {"10", 0.8},
};
#define NREG DTM_ARRAY_LEN(regions)

enum err_code {
    E_TIMEOUT,
    E_GW_TIMEOUT,
    E_UPSTREAM,
    E_SIGNATURE,
    E_PAYMENT,
    E_DUPLICATE,
    E_CITIZEN,
    E_MISMATCH,
    E_DOCUMENT,
    E_AUTH,
    E_SESSION,
    E_RATE,
    E_INTERNAL,
    E_BIZ,
    NERR
};

static const struct {
    const char *code, *vi, *en;
    double weight;
    unsigned needs; /* service flags one of which the service must have; 0 = any */
} errors[NERR] = {
    [E_TIMEOUT] = {"TIMEOUT", "Hết thời gian chờ kết nối tới CSDL quốc gia về dân cư",
                   "Timed out waiting for the national population database", 14, SV_CIT},
    [E_GW_TIMEOUT] = {"GATEWAY_TIMEOUT",
                      "Hết thời gian chờ phản hồi từ hệ thống xử lý nghiệp vụ (30 giây)",
                      "Gateway timeout: the back-office system did not answer within 30 s", 6, 0},
    [E_UPSTREAM] = {"UPSTREAM_UNAVAILABLE",
                    "Nền tảng tích hợp, chia sẻ dữ liệu quốc gia (NDXP) tạm thời không phản hồi",
                    "Upstream service unavailable (HTTP 503 from NDXP)", 14, 0},
    [E_SIGNATURE] = {"INVALID_SIGNATURE",
                     "Chữ ký số trên hồ sơ không hợp lệ hoặc chứng thư số đã hết hạn",
                     "Invalid digital signature or expired certificate", 9, 0},
    [E_PAYMENT] = {"PAYMENT_DECLINED",
                   "Ngân hàng từ chối giao dịch thanh toán: tài khoản không đủ số dư",
                   "Payment declined by the bank: insufficient funds", 12, SV_PAY | SV_FEE},
    [E_DUPLICATE] = {"DUPLICATE_SUBMISSION", "Hồ sơ đã được nộp trước đó và đang chờ xử lý",
                     "Duplicate submission: the application is already being processed", 9, 0},
    [E_CITIZEN] = {"CITIZEN_NOT_FOUND",
                   "Không tìm thấy số định danh cá nhân trong CSDL quốc gia về dân cư",
                   "Personal identification number not found in the national population database",
                   7, SV_CIT},
    [E_MISMATCH] = {"DATA_MISMATCH", "Họ tên, ngày sinh không khớp với CSDL quốc gia về dân cư",
                    "Name or date of birth does not match the national population database", 8,
                    SV_CIT},
    [E_DOCUMENT] = {"MISSING_DOCUMENT", "Thiếu thành phần hồ sơ bắt buộc",
                    "A required document is missing from the application", 8, 0},
    [E_AUTH] = {"AUTH_FAILED", "Xác thực tài khoản định danh điện tử VNeID không thành công",
                "VNeID electronic identity authentication failed", 6, SV_CIT},
    [E_SESSION] = {"SESSION_EXPIRED", "Phiên làm việc đã hết hạn, vui lòng đăng nhập lại",
                   "Session expired, please sign in again", 4, 0},
    [E_RATE] = {"RATE_LIMITED", "Vượt quá số lượng yêu cầu cho phép trong một phút",
                "Too many requests per minute", 3, 0},
    [E_INTERNAL] = {"INTERNAL_ERROR", "Lỗi hệ thống: không ghi được hồ sơ vào cơ sở dữ liệu",
                    "Internal error: the application could not be saved", 3, 0},
    [E_BIZ] = {"ENTERPRISE_NOT_FOUND", "Mã số doanh nghiệp không tồn tại hoặc đã ngừng hoạt động",
               "Enterprise code not found or no longer active", 5, SV_BIZ},
};

/* Weekday hour weights (local time) of the three daily profiles. */
static const double profile_hours[3][24] = {
    [P_OFFICE] = {0.2, 0.1, 0.1, 0.1,  0.1, 0.2, 0.6, 3, 9, 11,  11,  9,
                  3,   4.5, 10,  10.5, 9,   5,   1.5, 1, 1, 0.8, 0.5, 0.3},
    [P_ONLINE] = {1.2, 0.7, 0.4, 0.3, 0.3, 0.6, 1.5, 4, 8,   10, 10,  8.5,
                  4.5, 5.5, 9,   9.5, 8.5, 6,   4.5, 5, 5.5, 5,  3.5, 2},
    [P_MACHINE] = {2, 1.5, 1.2, 1, 1, 1.5, 2.5, 5,   8, 9, 9,   8,
                   6, 7,   9,   9, 8, 6,   4,   3.5, 3, 3, 2.5, 2},
};

enum day_kind { DK_WEEKDAY, DK_SATURDAY, DK_SUNDAY /* and public holidays */ };

static double profile_weight(enum profile p, enum day_kind k, int h)
{
    double w = profile_hours[p][h];
    if (k == DK_WEEKDAY)
        return w;
    switch (p) {
    case P_OFFICE: /* one-stop shops open on Saturday mornings only */
        return w * (k == DK_SATURDAY && h >= 7 && h < 12 ? 0.22 : 0.035);
    case P_ONLINE: /* citizens at home: relatively more in the evening */
        return w * (k == DK_SATURDAY ? 0.42 : 0.3) * (h >= 19 && h < 23 ? 1.5 : 1.0);
    case P_MACHINE:
        return w * (k == DK_SATURDAY ? 0.5 : 0.35);
    }
    return w;
}

/* ---- output buffer: one file at a time, written in 1 MiB chunks */

#define WBUF_SIZE (1u << 20)
#define LINE_MAX_BYTES 16384 /* room reserved for one record */

struct wfile {
    FILE *fp;
    const char *path;
    char *buf;
    size_t n;
    int err; /* errno of the first failure, sticky */
    size_t lines;
};

static void w_flush(struct wfile *w)
{
    if (w->n && !w->err && fwrite(w->buf, 1, w->n, w->fp) != w->n)
        w->err = errno ? errno : EIO;
    w->n = 0;
}

/* Where the next record goes; room for LINE_MAX_BYTES. */
static char *w_line(struct wfile *w)
{
    if (WBUF_SIZE - w->n < LINE_MAX_BYTES)
        w_flush(w);
    return w->buf + w->n;
}

static void w_end(struct wfile *w, char *end)
{
    *end++ = '\n';
    w->n = (size_t)(end - w->buf);
    w->lines++;
}

/* ---- formatting by hand (the hot path writes about 300 bytes a record) */

#define PUTL(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

static char *put_raw(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* s as a JSON string; our texts are trusted UTF-8, only the JSON specials need escaping. */
static char *put_str(char *p, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p = PUTL(p, "\\u00");
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

static char *put_u64(char *p, uint64_t v)
{
    char t[20];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = t[--n];
    return p;
}

static char *put_u64w(char *p, uint64_t v, int width) /* zero-padded to at least width */
{
    char t[20];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        t[n++] = '0';
    while (n)
        *p++ = t[--n];
    return p;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

#define MS_DAY 86400000LL
#define MS_HOUR 3600000LL
#define TZ_MS ((int64_t)DTM_TZ_OFFSET * 1000)

/* Local midnight (UTC+07:00) of a day, in ms since the epoch. */
static int64_t day_start_ms(int64_t day)
{
    return day * MS_DAY - TZ_MS;
}

static char *put_ymd(char *p, int64_t day)
{
    int64_t y;
    unsigned m, d;
    dtm_civil_from_days(day, &y, &m, &d);
    p = put_u64w(p, (uint64_t)y, 4);
    *p++ = '-';
    p = put_u64w(p, m, 2);
    *p++ = '-';
    return put_u64w(p, d, 2);
}

static char *put_date(char *p, int64_t day) /* "YYYY-MM-DD" */
{
    *p++ = '"';
    p = put_ymd(p, day);
    *p++ = '"';
    return p;
}

struct day_cache {
    int64_t day;
    char s[16]; /* "YYYY-MM-DDT" */
};

/* t (ms since the epoch) as "YYYY-MM-DDTHH:MM:SS.mmm+07:00", quoted. */
static char *put_time(char *p, int64_t t_ms, struct day_cache *c)
{
    int64_t loc = t_ms + TZ_MS;
    int64_t day = floor_div(loc, MS_DAY);
    int64_t r = loc - day * MS_DAY;
    if (c->day != day) {
        char *q = put_ymd(c->s, day);
        *q = 'T';
        c->day = day;
    }
    *p++ = '"';
    memcpy(p, c->s, 11);
    p += 11;
    p = put_u64w(p, (uint64_t)(r / MS_HOUR), 2);
    *p++ = ':';
    p = put_u64w(p, (uint64_t)(r / 60000 % 60), 2);
    *p++ = ':';
    p = put_u64w(p, (uint64_t)(r / 1000 % 60), 2);
    *p++ = '.';
    p = put_u64w(p, (uint64_t)(r % 1000), 3);
    p = PUTL(p, "+07:00\"");
    return p;
}

/* ---- generator state */

struct agg {
    uint32_t total, success, failed, n_ms;
    uint64_t sum_ms;
};

struct sysrt {
    const struct system_def *def;
    const struct service *svc;
    size_t nsvc;
    double svc_cum[MAX_SVC];
    char agency[MAX_AG][24];
    size_t nag;
    double ag_cum[MAX_AG];
    double chan_cum[NCH];
    uint32_t seq[MAX_AG]; /* per agency per day, for transaction ids */
    int64_t last_ms;      /* latest record, INT64_MIN = none */
};

struct incident {
    int64_t day;    /* day index */
    int h0, h1;     /* hours [h0, h1) */
    int sys;        /* system index, or -1 = every service carrying a citizen id */
    unsigned needs; /* service flags required (0 = any) */
    double fail, slow;
    enum err_code err;
};

struct day_info {
    int64_t index, day; /* index within the window, days since the epoch */
    enum day_kind kind;
    int dom, month, last_dom; /* day of month, month 1..12, days in this month */
    int64_t year;
    double mult; /* trend × weekday × noise */
};

#define RING 32
#define RING_LINE 2048

struct gen {
    uint64_t seed;
    int64_t first_day, days, cut; /* cut: first day index without offline-system data */
    int64_t limit_ms;             /* records are before this instant */
    size_t target;
    struct rng rng, trng;
    struct sysrt sys[NSYS];
    double region_cum[NREG];
    double err_cum[NERR];
    double load[24]; /* 0..1 busy-ness of the hour (slower answers, more failures) */
    struct incident inc[4];
    size_t ninc;
    struct agg *agg; /* [sys][svc][day] */
    size_t *cell_n;  /* transactions per (day, hour) */
    struct wfile w;
    struct day_cache dc1, dc2;
    char ring[RING][RING_LINE]; /* recent valid lines of the quality system (re-sent) */
    size_t ring_len[RING];
    size_t nring;
    size_t invalid, dups, mismatches;
};

static struct agg *agg_at(struct gen *g, size_t s, size_t k, int64_t d)
{
    return &g->agg[((size_t)s * MAX_SVC + k) * (size_t)g->days + (size_t)d];
}

static void day_info(const struct gen *g, int64_t index, struct day_info *di)
{
    int64_t day = g->first_day + index, y, ny;
    unsigned m, d, nm, nd;
    dtm_civil_from_days(day, &y, &m, &d);
    di->index = index;
    di->day = day;
    di->year = y;
    di->month = (int)m;
    di->dom = (int)d;
    dtm_civil_from_days(day + 1, &ny, &nm, &nd);
    (void)ny;
    (void)nm;
    di->last_dom = nd == 1 ? (int)d : 31;
    int wd = (int)((day % 7 + 11) % 7); /* 0 = Sunday (1970-01-01 was a Thursday) */
    bool holiday =
        (m == 1 && d == 1) || (m == 4 && d == 30) || (m == 5 && d == 1) || (m == 9 && d == 2);
    di->kind = holiday || wd == 0 ? DK_SUNDAY : wd == 6 ? DK_SATURDAY : DK_WEEKDAY;
    uint64_t x = g->seed ^ ((uint64_t)day * 0x9e3779b97f4a7c15ULL);
    double noise = 0.94 + 0.12 * (double)(splitmix64(&x) >> 11) * 0x1.0p-53;
    double trend = 0.92 + 0.16 * (double)index / (double)(g->days > 1 ? g->days - 1 : 1);
    double wdm = wd == 1 ? 1.08 : wd == 5 ? 0.96 : 1.0;
    di->mult = noise * trend * wdm;
}

/* Seasonality of a system's field on a day. */
static double season(enum cat c, const struct day_info *di)
{
    switch (c) {
    case CAT_TAX: /* monthly declarations and payments are due on the 20th */
        if (di->dom >= 18 && di->dom <= 20)
            return 1.8;
        return di->dom == di->last_dom ? 1.3 : 1.0;
    case CAT_EDU: /* exams and university admissions */
        return di->month >= 6 && di->month <= 8 ? 2.5 : 1.0;
    case CAT_SOCIAL:
        return di->dom <= 5 ? 1.2 : 1.0;
    case CAT_CUSTOMS:
        return di->dom == di->last_dom ? 1.2 : 1.0;
    default:
        return 1.0;
    }
}

static double sys_weight(const struct gen *g, size_t s, const struct day_info *di, int h)
{
    const struct system_def *def = g->sys[s].def;
    if (s == SYS_OFFLINE && di->index >= g->cut)
        return 0;
    return def->volume * di->mult * season(def->cat, di) *
           profile_weight(def->profile, di->kind, h);
}

static bool office_open(const struct day_info *di, int h)
{
    if (di->kind == DK_WEEKDAY)
        return h >= 7 && h < 17;
    return di->kind == DK_SATURDAY && h >= 7 && h < 11;
}

static void setup_systems(struct gen *g)
{
    for (size_t s = 0; s < NSYS; s++) {
        struct sysrt *sy = &g->sys[s];
        const struct system_def *def = &system_defs[s];
        sy->def = def;
        sy->svc = catalogue[def->cat].s;
        sy->nsvc = catalogue[def->cat].n;
        double acc = 0;
        for (size_t k = 0; k < sy->nsvc; k++)
            sy->svc_cum[k] = acc += sy->svc[k].share;
        if (def->region) { /* UBND, three departments, two ward-level units */
            static const char *const fmt_units[] = {"000.00.00.", "000.00.12.", "000.00.15.",
                                                    "000.00.21.", "000.05.31.", "000.12.31."};
            static const double w[] = {1, 3, 2, 2, 3, 3};
            sy->nag = 6;
            for (size_t a = 0; a < sy->nag; a++) {
                snprintf(sy->agency[a], sizeof sy->agency[a], "%s%s", fmt_units[a], def->root);
                sy->ag_cum[a] = (a ? sy->ag_cum[a - 1] : 0) + w[a];
            }
        } else { /* the department that runs the system and three of its units */
            static const double w[] = {4, 2, 2, 1};
            sy->nag = 4;
            for (size_t a = 0; a < sy->nag; a++) {
                snprintf(sy->agency[a], sizeof sy->agency[a], "000.%02u.%02d.%s", (unsigned)a,
                         def->unit, def->root);
                sy->ag_cum[a] = (a ? sy->ag_cum[a - 1] : 0) + w[a];
            }
        }
        acc = 0;
        for (size_t c = 0; c < NCH; c++)
            sy->chan_cum[c] = acc += def->chan[c];
        sy->last_ms = INT64_MIN;
    }
    double acc = 0;
    for (size_t r = 0; r < NREG; r++)
        g->region_cum[r] = acc += regions[r].pop;
    acc = 0;
    for (size_t e = 0; e < NERR; e++)
        g->err_cum[e] = acc += errors[e].weight;
    double mx = 0;
    for (int h = 0; h < 24; h++)
        mx = DTM_MAX(mx, profile_hours[P_ONLINE][h]);
    for (int h = 0; h < 24; h++)
        g->load[h] = profile_hours[P_ONLINE][h] / mx;
}

/* A few incidents that show up in the dashboards as failure and latency spikes. */
static void setup_incidents(struct gen *g)
{
    struct rng r;
    rng_seed(&r, g->seed, 7);
    uint32_t span = (uint32_t)(g->days / 5 > 0 ? g->days / 5 : 1);
    /* the national population database answers slowly for two hours one morning */
    g->inc[0] = (struct incident){(int64_t)(g->days * 35 / 100) + rng_below(&r, span),
                                  9,
                                  11,
                                  -1,
                                  SV_CIT,
                                  0.35,
                                  4.0,
                                  E_TIMEOUT};
    /* the payment platform behind the national portal fails one afternoon */
    g->inc[1] = (struct incident){(int64_t)(g->days * 55 / 100) + rng_below(&r, span),
                                  14,
                                  17,
                                  SYS_PORTAL,
                                  SV_PAY | SV_FEE,
                                  0.45,
                                  2.0,
                                  E_UPSTREAM};
    /* social insurance has a bad day after a release */
    g->inc[2] = (struct incident){(int64_t)(g->days * 15 / 100) + rng_below(&r, span),
                                  0,
                                  24,
                                  SYS_BHXH,
                                  0,
                                  0.12,
                                  2.5,
                                  E_INTERNAL};
    g->ninc = 3;
    for (size_t i = 0; i < g->ninc; i++)
        if (g->inc[i].day >= g->days)
            g->inc[i].day = g->days - 1;
}

/* Splits the target over the (day, hour) cells. Returns false when no cell is open (now_us
 * before the first day). */
static bool plan_cells(struct gen *g)
{
    size_t ncell = (size_t)g->days * 24;
    double *w = malloc(ncell * sizeof *w);
    if (!w)
        return false;
    double tot = 0;
    size_t last = SIZE_MAX;
    for (int64_t d = 0; d < g->days; d++) {
        struct day_info di;
        day_info(g, d, &di);
        for (int h = 0; h < 24; h++) {
            size_t c = (size_t)d * 24 + (size_t)h;
            int64_t start = day_start_ms(di.day) + h * MS_HOUR;
            double frac = start >= g->limit_ms ? 0
                          : g->limit_ms - start >= MS_HOUR
                              ? 1
                              : (double)(g->limit_ms - start) / MS_HOUR;
            double sum = 0;
            for (size_t s = 0; s < NSYS; s++)
                sum += sys_weight(g, s, &di, h);
            w[c] = sum * frac;
            tot += w[c];
            if (w[c] > 0)
                last = c;
        }
    }
    if (last == SIZE_MAX) {
        free(w);
        return false;
    }
    double acc = 0;
    size_t prev = 0;
    for (size_t c = 0; c < ncell; c++) {
        acc += w[c];
        size_t r = c >= last ? g->target : (size_t)floor(acc / tot * (double)g->target + 0.5);
        if (r > g->target)
            r = g->target;
        if (r < prev)
            r = prev;
        g->cell_n[c] = r - prev;
        prev = r;
    }
    free(w);
    return true;
}

/* ---- transactions */

static const char *pick_region(struct gen *g, const struct system_def *def)
{
    if (def->region && rng_chance(&g->rng, 0.96))
        return def->region;
    return regions[rng_pick(&g->rng, g->region_cum, NREG)].code;
}

/* A 12-digit personal identification number: province of birth, century and sex, year of birth,
 * six random digits. `digits` < 12 makes a broken one (the quality system). */
static char *put_citizen(struct gen *g, char *p, const char *region, int64_t year, int digits)
{
    const char *birth = rng_chance(&g->rng, 0.8) ? region : regions[rng_below(&g->rng, NREG)].code;
    int64_t by = year - 18 - rng_below(&g->rng, 60);
    unsigned cs = (by >= 2000 ? 2u : 0u) + rng_below(&g->rng, 2);
    char id[16];
    char *q = id;
    *q++ = '0';
    *q++ = birth[0];
    *q++ = birth[1];
    *q++ = (char)('0' + cs);
    q = put_u64w(q, (uint64_t)(by % 100), 2);
    uint32_t r6 = rng_below(&g->rng, 1000000);
    q = put_u64w(q, r6, 6);
    *p++ = '"';
    memcpy(p, id, (size_t)digits);
    p += digits;
    *p++ = '"';
    return p;
}

static char *put_business(struct gen *g, char *p)
{
    *p++ = '"';
    *p++ = '0';
    *p++ = (char)('1' + rng_below(&g->rng, 9));
    p = put_u64w(p, rng_below(&g->rng, 100000000), 8);
    if (rng_chance(&g->rng, 0.08)) {
        p = PUTL(p, "-00");
        *p++ = (char)('1' + rng_below(&g->rng, 9));
    }
    *p++ = '"';
    return p;
}

static enum err_code pick_error(struct gen *g, unsigned flags)
{
    enum err_code e = (enum err_code)rng_pick(&g->rng, g->err_cum, NERR);
    if (errors[e].needs && !(errors[e].needs & flags))
        e = e == E_TIMEOUT ? E_GW_TIMEOUT : E_DOCUMENT;
    return e;
}

enum bad {
    BAD_NONE = -1,
    BAD_NO_ERROR_CODE,
    BAD_SHORT_ID,
    BAD_FINISH_FIRST,
    BAD_CHANNEL,
    BAD_DATE_FORMAT,
    NBAD
};

/* One transaction line of system s starting at t_ms (day di, hour h). */
static void emit_txn(struct gen *g, size_t s, int64_t t_ms, const struct day_info *di, int h)
{
    struct sysrt *sy = &g->sys[s];
    const struct system_def *def = sy->def;
    int bad = BAD_NONE;
    if (s == SYS_QUALITY) {
        if (g->nring && rng_chance(&g->rng, 0.02)) { /* re-sent: an earlier line, byte for byte */
            size_t i = rng_below(&g->rng, (uint32_t)DTM_MIN(g->nring, (size_t)RING));
            char *p = w_line(&g->w);
            memcpy(p, g->ring[i], g->ring_len[i]);
            w_end(&g->w, p + g->ring_len[i]);
            g->dups++;
            return;
        }
        if (rng_chance(&g->rng, 0.035))
            bad = (int)rng_below(&g->rng, NBAD);
    }
    size_t a = rng_pick(&g->rng, sy->ag_cum, sy->nag);
    size_t k = rng_pick(&g->rng, sy->svc_cum, sy->nsvc);
    const struct service *sv = &sy->svc[k];
    uint32_t seq = ++sy->seq[a];
    enum channel ch = (enum channel)rng_pick(&g->rng, sy->chan_cum, NCH);
    if ((ch == CH_KIOSK || ch == CH_COUNTER) && !office_open(di, h))
        ch = rng_chance(&g->rng, 0.6) ? CH_WEB : CH_MOBILE;

    double pfail = def->fail * (0.75 + 0.5 * g->load[h]), slow = 1;
    int forced = -1;
    for (size_t i = 0; i < g->ninc; i++) {
        const struct incident *in = &g->inc[i];
        if (in->day == di->index && h >= in->h0 && h < in->h1 &&
            (in->sys < 0 || (size_t)in->sys == s) && (!in->needs || (in->needs & sv->flags))) {
            pfail = in->fail;
            slow = in->slow;
            forced = (int)in->err;
        }
    }
    if (s == SYS_OFFLINE && di->index >= g->cut - 2) { /* going down */
        pfail = 0.3;
        slow = 3;
        forced = E_UPSTREAM;
    }
    double ppend = sv->flags & SV_SLOW ? 0.025 : 0.004;
    double u = rng_u01(&g->rng);
    int status = u < ppend ? 2 : u < ppend + pfail ? 1 : 0; /* success, failed, pending */
    if (bad == BAD_NO_ERROR_CODE)
        status = 1;
    enum err_code err = E_DOCUMENT;
    if (status == 1)
        err = forced >= 0 && rng_chance(&g->rng, 0.85) ? (enum err_code)forced
                                                       : pick_error(g, sv->flags);
    int64_t ms = -1;
    if (status != 2) {
        if (status == 1 && (err == E_TIMEOUT || err == E_GW_TIMEOUT)) {
            ms = 30000 + rng_below(&g->rng, 3000);
        } else {
            double med = def->median_ms * sv->speed * slow * (1 + 0.3 * g->load[h]);
            if (status == 1)
                med *= 0.6;
            double v = rng_lognormal(&g->rng, med, def->sigma);
            ms = v < 5 ? 5 : v > 120000 ? 120000 : (int64_t)(v + 0.5);
        }
    }

    char *line = w_line(&g->w), *p = line;
    p = PUTL(p, "{\"txn_id\":\"");
    p = put_raw(p, sy->agency[a]);
    *p++ = '-';
    p = put_u64w(p, (uint64_t)(di->year % 100), 2);
    p = put_u64w(p, (uint64_t)di->month, 2);
    p = put_u64w(p, (uint64_t)di->dom, 2);
    *p++ = '-';
    p = put_u64w(p, seq, 6);
    p = PUTL(p, "\",\"system_code\":\"");
    p = put_raw(p, def->code);
    p = PUTL(p, "\",\"agency_code\":\"");
    p = put_raw(p, sy->agency[a]);
    p = PUTL(p, "\",\"service_code\":\"");
    p = put_raw(p, sv->code);
    p = PUTL(p, "\",\"channel\":\"");
    p = put_raw(p, bad == BAD_CHANNEL ? "zalo" : channel_name[ch]);
    p = PUTL(p, "\",\"status\":\"");
    p = put_raw(p, status == 0 ? "success" : status == 1 ? "failed" : "pending");
    *p++ = '"';
    if (status == 1) {
        if (bad != BAD_NO_ERROR_CODE) {
            p = PUTL(p, ",\"error_code\":\"");
            p = put_raw(p, errors[err].code);
            *p++ = '"';
        }
        p = PUTL(p, ",\"error_reason\":");
        p = put_str(p, def->english ? errors[err].en : errors[err].vi);
    }
    p = PUTL(p, ",\"started_at\":");
    if (bad == BAD_DATE_FORMAT) { /* a local format the dictionary does not accept */
        int64_t r = t_ms + TZ_MS - di->day * MS_DAY;
        p = PUTL(p, "\"");
        p = put_u64w(p, (uint64_t)di->dom, 2);
        *p++ = '/';
        p = put_u64w(p, (uint64_t)di->month, 2);
        *p++ = '/';
        p = put_u64w(p, (uint64_t)di->year, 4);
        *p++ = ' ';
        p = put_u64w(p, (uint64_t)(r / MS_HOUR), 2);
        *p++ = ':';
        p = put_u64w(p, (uint64_t)(r / 60000 % 60), 2);
        *p++ = ':';
        p = put_u64w(p, (uint64_t)(r / 1000 % 60), 2);
        *p++ = '"';
    } else {
        p = put_time(p, t_ms, &g->dc1);
    }
    if (ms >= 0) {
        p = PUTL(p, ",\"finished_at\":");
        /* the broken clock writes UTC but labels it +07:00: seven hours too early */
        p = put_time(p, t_ms + ms - (bad == BAD_FINISH_FIRST ? TZ_MS : 0), &g->dc2);
        p = PUTL(p, ",\"response_ms\":");
        p = put_u64(p, (uint64_t)ms);
    } else if (bad == BAD_FINISH_FIRST) {
        p = PUTL(p, ",\"finished_at\":");
        p = put_time(p, t_ms - TZ_MS, &g->dc2);
    }
    const char *region = pick_region(g, def);
    if (bad == BAD_SHORT_ID || ((sv->flags & SV_CIT) && rng_chance(&g->rng, 0.92))) {
        p = PUTL(p, ",\"citizen_id\":");
        p = put_citizen(g, p, region, di->year, bad == BAD_SHORT_ID ? 11 : 12);
    }
    if ((sv->flags & SV_BIZ) && rng_chance(&g->rng, 0.97)) {
        p = PUTL(p, ",\"business_id\":");
        p = put_business(g, p);
    }
    if ((sv->flags & SV_FEE) && sv->fee > 0) {
        p = PUTL(p, ",\"amount\":");
        p = put_u64(p, (uint64_t)sv->fee);
    } else if (sv->flags & SV_PAY) {
        double v = rng_lognormal(&g->rng, sv->fee, 0.9);
        uint64_t amount = (uint64_t)(v / 1000 + 0.5) * 1000;
        p = PUTL(p, ",\"amount\":");
        p = put_u64(p, amount ? amount : 1000);
    }
    p = PUTL(p, ",\"region_code\":\"");
    p = put_raw(p, region);
    *p++ = '"';
    u = rng_u01(&g->rng);
    if (u < 0.05)
        p = put_raw(p, u < 0.005  ? ",\"priority\":\"urgent\""
                       : u < 0.03 ? ",\"priority\":\"high\""
                                  : ",\"priority\":\"low\"");
    u = rng_u01(&g->rng);
    if (u < 0.14)
        p = put_raw(p, u < 0.01   ? ",\"classification\":\"confidential\""
                       : u < 0.04 ? ",\"classification\":\"public\""
                                  : ",\"classification\":\"internal\"");
    *p++ = '}';
    size_t len = (size_t)(p - line);
    w_end(&g->w, p);
    if (t_ms > sy->last_ms)
        sy->last_ms = t_ms;

    if (bad != BAD_NONE) {
        g->invalid++;
        return;
    }
    struct agg *ag = agg_at(g, s, k, di->index);
    ag->total++;
    ag->success += status == 0;
    ag->failed += status == 1;
    if (ms >= 0) {
        ag->sum_ms += (uint64_t)ms;
        ag->n_ms++;
    }
    if (s == SYS_QUALITY && len <= RING_LINE) {
        size_t i = g->nring % RING;
        memcpy(g->ring[i], line, len);
        g->ring_len[i] = len;
        g->nring++;
    }
}

static void gen_transactions(struct gen *g)
{
    for (int64_t d = 0; d < g->days; d++) {
        struct day_info di;
        day_info(g, d, &di);
        for (size_t s = 0; s < NSYS; s++)
            memset(g->sys[s].seq, 0, sizeof g->sys[s].seq);
        for (int h = 0; h < 24; h++) {
            size_t n = g->cell_n[(size_t)d * 24 + (size_t)h];
            if (!n)
                continue;
            double cum[NSYS], tot = 0;
            for (size_t s = 0; s < NSYS; s++)
                cum[s] = tot += sys_weight(g, s, &di, h);
            int64_t start = day_start_ms(di.day) + h * MS_HOUR;
            int64_t len = DTM_MIN(MS_HOUR, g->limit_ms - start);
            /* sorted uniform start times: normalised sums of n+1 exponential spacings */
            struct rng save = g->trng;
            double sum = 0;
            for (size_t i = 0; i <= n; i++)
                sum += rng_exp1(&g->trng);
            g->trng = save;
            double acc = 0;
            for (size_t i = 0; i < n; i++) {
                acc += rng_exp1(&g->trng);
                int64_t off = (int64_t)(acc / sum * (double)len);
                if (off >= len)
                    off = len - 1;
                size_t s = pick_cum(cum, NSYS, rng_u01(&g->rng) * tot);
                emit_txn(g, s, start + off, &di, h);
            }
            rng_exp1(&g->trng);
        }
    }
}

/* ---- service_stats: per system × service × day, from the counts of the valid transactions */

static void gen_service_stats(struct gen *g)
{
    /* deliberate mismatches: the system's own count differs from what DTM received */
    struct rng r;
    rng_seed(&r, g->seed, 3);
    size_t cells = (size_t)NSYS * MAX_SVC * (size_t)g->days, want = 5 + rng_below(&r, 6);
    size_t mm[10];
    uint32_t delta[10];
    size_t nmm = 0;
    for (int tries = 0; nmm < want && tries < 10000; tries++) {
        size_t c = (size_t)(rng_u01(&r) * (double)cells);
        bool dup = false;
        for (size_t i = 0; i < nmm; i++)
            dup |= mm[i] == c;
        if (dup || g->agg[c].total == 0 || c / ((size_t)MAX_SVC * (size_t)g->days) == SYS_QUALITY)
            continue;
        mm[nmm] = c;
        delta[nmm] = 1 + rng_below(&r, 40);
        nmm++;
    }
    g->mismatches = nmm;

    for (int64_t d = 0; d < g->days; d++) {
        int64_t day = g->first_day + d;
        for (size_t s = 0; s < NSYS; s++) {
            const struct sysrt *sy = &g->sys[s];
            for (size_t k = 0; k < sy->nsvc; k++) {
                const struct agg *a = agg_at(g, s, k, d);
                if (!a->total)
                    continue;
                size_t c = (size_t)(a - g->agg);
                uint64_t total = a->total, success = a->success;
                for (size_t i = 0; i < nmm; i++)
                    if (mm[i] == c) { /* half counted more successes, half more pending */
                        total += delta[i];
                        if (i % 2 == 0)
                            success += delta[i];
                    }
                char *p = w_line(&g->w);
                p = PUTL(p, "{\"system_code\":\"");
                p = put_raw(p, sy->def->code);
                p = PUTL(p, "\",\"agency_code\":\"");
                p = put_raw(p, sy->agency[0]);
                p = PUTL(p, "\",\"service_code\":\"");
                p = put_raw(p, sy->svc[k].code);
                p = PUTL(p, "\",\"period_type\":\"day\",\"period_start\":");
                p = put_date(p, day);
                p = PUTL(p, ",\"total\":");
                p = put_u64(p, total);
                p = PUTL(p, ",\"success\":");
                p = put_u64(p, success);
                p = PUTL(p, ",\"failed\":");
                p = put_u64(p, a->failed);
                if (a->n_ms) { /* one decimal, rounded half up, integer arithmetic */
                    uint64_t v10 = (a->sum_ms * 10 + a->n_ms / 2) / a->n_ms;
                    p = PUTL(p, ",\"avg_response_ms\":");
                    p = put_u64(p, v10 / 10);
                    *p++ = '.';
                    *p++ = (char)('0' + v10 % 10);
                }
                uint64_t x = g->seed ^ c;
                uint64_t pct = 2 + splitmix64(&x) % 10; /* repeat users */
                p = PUTL(p, ",\"active_users\":");
                p = put_u64(p, total - total * pct / 100);
                *p++ = '}';
                w_end(&g->w, p);
            }
        }
    }
}

/* ---- the other datasets */

static int64_t day_count(struct gen *g, size_t s, int64_t d)
{
    int64_t n = 0;
    for (size_t k = 0; k < g->sys[s].nsvc; k++)
        n += agg_at(g, s, k, d)->total;
    return n;
}

/* A time on day index d: office-weighted hour (or any hour), random minute; INT64_MIN when it
 * would be at or after the limit. */
static int64_t random_time(struct gen *g, struct rng *r, int64_t d, bool office)
{
    int h;
    if (office) {
        static const double cum[] = {1, 3, 6, 9, 11, 12, 14, 17, 20, 22, 23};
        h = 7 + (int)rng_pick(r, cum, DTM_ARRAY_LEN(cum));
    } else {
        h = (int)rng_below(r, 24);
    }
    int64_t t = day_start_ms(g->first_day + d) + h * MS_HOUR + rng_below(r, (uint32_t)MS_HOUR);
    return t < g->limit_ms ? t : INT64_MIN;
}

static bool sys_active(const struct gen *g, size_t s, int64_t d)
{
    return !(s == SYS_OFFLINE && d >= g->cut);
}

static char *put_id(char *p, const char *prefix, int64_t day, unsigned seq, int width)
{
    int64_t y;
    unsigned m, dd;
    dtm_civil_from_days(day, &y, &m, &dd);
    p = put_raw(p, prefix);
    p = put_u64w(p, (uint64_t)(y % 100), 2);
    p = put_u64w(p, m, 2);
    p = put_u64w(p, dd, 2);
    *p++ = '-';
    return put_u64w(p, seq, width);
}

static void emit_connection(struct gen *g, struct rng *r, size_t s, int64_t d, unsigned seq,
                            int64_t t, const char *peer, bool in, const char *op, int64_t records)
{
    struct sysrt *sy = &g->sys[s];
    bool failing = s == SYS_OFFLINE && d >= g->cut - 2;
    bool error = rng_chance(r, failing ? 0.6 : 0.03);
    static const char *const reasons[] = {
        "Connection timed out after 30000 ms",
        "Hết thời gian chờ phản hồi từ NDXP (30 giây)",
        "HTTP 502 Bad Gateway",
        "Chứng thư số của hệ thống đối tác đã hết hạn",
        "TLS handshake failed: certificate verify failed",
        "Từ chối kết nối: khóa API không hợp lệ",
    };
    if (error)
        records = rng_chance(r, 0.7) ? 0 : records / 3;
    uint64_t per_record = 900 + rng_below(r, 1400);        /* one draw a statement: C leaves the */
    uint64_t bytes = (uint64_t)records * per_record + 512; /* order of operands unspecified */
    bytes += rng_below(r, 2048);
    uint64_t dur;
    if (error && rng_chance(r, 0.5))
        dur = 30000 + rng_below(r, 500);
    else
        dur = (uint64_t)rng_lognormal(r, 120 + 0.6 * (double)records, 0.5) + 1;
    char *p = w_line(&g->w);
    p = PUTL(p, "{\"system_code\":\"");
    p = put_raw(p, sy->def->code);
    p = PUTL(p, "\",\"log_id\":\"");
    p = put_id(p, "CL", g->first_day + d, seq, 4);
    p = PUTL(p, "\",\"peer_system\":\"");
    p = put_raw(p, peer);
    p = PUTL(p, "\",\"direction\":\"");
    p = put_raw(p, in ? "in" : "out");
    p = PUTL(p, "\",\"operation\":\"");
    p = put_raw(p, op);
    p = PUTL(p, "\",\"records\":");
    p = put_u64(p, (uint64_t)records);
    p = PUTL(p, ",\"bytes\":");
    p = put_u64(p, bytes);
    p = PUTL(p, ",\"status\":\"");
    p = put_raw(p, error ? "error" : "ok");
    p = PUTL(p, "\",\"started_at\":");
    p = put_time(p, t, &g->dc1);
    p = PUTL(p, ",\"duration_ms\":");
    p = put_u64(p, dur);
    if (error) {
        p = PUTL(p, ",\"error_reason\":");
        p = put_str(p, reasons[rng_below(r, DTM_ARRAY_LEN(reasons))]);
    }
    *p++ = '}';
    w_end(&g->w, p);
    if (t > sy->last_ms)
        sy->last_ms = t;
}

static void gen_connection_logs(struct gen *g)
{
    struct rng r;
    rng_seed(&r, g->seed, 4);
    for (int64_t d = 0; d < g->days; d++) {
        for (size_t s = 0; s < NSYS; s++) {
            if (!sys_active(g, s, d))
                continue;
            const struct system_def *def = g->sys[s].def;
            unsigned seq = 0;
            int64_t total = day_count(g, s, d);
            /* nightly synchronisation of the day's applications with the national portal */
            int64_t t = day_start_ms(g->first_day + d) + 23 * MS_HOUR + 30 * 60000 +
                        rng_below(&r, 20 * 60000);
            if (t < g->limit_ms) {
                if (s == SYS_PORTAL) {
                    size_t child = 12 + rng_below(&r, NSYS - 12);
                    emit_connection(g, &r, s, d, ++seq, t, system_defs[child].code, true,
                                    "NhanDongBoHoSo", day_count(g, child, d));
                } else {
                    emit_connection(g, &r, s, d, ++seq, t, system_defs[SYS_PORTAL].code, false,
                                    def->region ? "DongBoHoSoTTHC" : "DongBoTrangThaiHoSo", total);
                }
            }
            if (rng_chance(&r, 0.7)) { /* the system's main data-sharing peer */
                t = random_time(g, &r, d, true);
                bool in = rng_chance(&r, 0.5);
                int64_t records = 50 + rng_below(&r, 3000);
                if (t != INT64_MIN)
                    emit_connection(g, &r, s, d, ++seq, t, def->partner, in, def->partner_op,
                                    records);
            }
            if ((def->region || s == SYS_PORTAL) && rng_chance(&r, 0.4)) {
                t = random_time(g, &r, d, true);
                if (t != INT64_MIN)
                    emit_connection(g, &r, s, d, ++seq, t, "CSDLQGDC", true,
                                    "TraCuuThongTinCongDan", total * 3 / 10 + 1);
            }
        }
    }
}

static void gen_security_events(struct gen *g)
{
    static const struct {
        const char *category, *description;
        double sev[5]; /* info low medium high critical */
    } kinds[] = {
        {"brute_force",
         "Phát hiện hơn 500 lần đăng nhập sai liên tiếp vào tài khoản quản trị từ địa chỉ IP nước "
         "ngoài",
         {5, 30, 40, 20, 5}},
        {"ddos",
         "Lưu lượng truy cập bất thường tới cổng dịch vụ công, khoảng 40.000 yêu cầu/giây",
         {0, 10, 40, 35, 15}},
        {"malware",
         "Phát hiện mã độc trên máy trạm của cán bộ bộ phận một cửa",
         {0, 20, 40, 30, 10}},
        {"phishing",
         "Thư điện tử giả mạo cơ quan nhà nước gửi tới cán bộ, chứa đường dẫn đánh cắp tài khoản",
         {10, 40, 35, 15, 0}},
        {"vulnerability",
         "Phát hiện lỗ hổng bảo mật chưa được vá trên máy chủ ứng dụng",
         {5, 25, 40, 25, 5}},
        {"web_attack",
         "Phát hiện truy vấn có dấu hiệu tấn công SQL injection vào API tra cứu hồ sơ",
         {5, 30, 40, 20, 5}},
        {"certificate",
         "Chứng thư số TLS của cổng dịch vụ sắp hết hạn (còn 7 ngày)",
         {40, 40, 20, 0, 0}},
        {"unauthorized_access",
         "Chặn truy cập trái phép vào dữ liệu cá nhân từ tài khoản không được phân quyền",
         {5, 25, 40, 25, 5}},
        {"data_leak",
         "Nghi ngờ lộ lọt dữ liệu: tệp hồ sơ của công dân bị chia sẻ công khai trên mạng",
         {0, 5, 30, 45, 20}},
        {"availability",
         "Dịch vụ không phản hồi trong 15 phút do quá tải tài nguyên máy chủ",
         {10, 30, 40, 20, 0}},
    };
    static const char *const sev_name[] = {"info", "low", "medium", "high", "critical"};
    static const double fix_hours[] = {48, 72, 24, 6, 2};
    struct rng r;
    rng_seed(&r, g->seed, 5);
    for (size_t s = 0; s < NSYS; s++) {
        int64_t span = s == SYS_OFFLINE ? g->cut : g->days;
        if (span <= 0)
            continue;
        unsigned n = (unsigned)(g->days / 8) + rng_below(&r, (uint32_t)(g->days / 6 + 2));
        for (unsigned i = 0; i < n; i++) {
            int64_t d = rng_below(&r, (uint32_t)span);
            int64_t t = random_time(g, &r, d, false);
            if (t == INT64_MIN)
                continue;
            size_t kd = rng_below(&r, DTM_ARRAY_LEN(kinds));
            double cum[5], acc = 0;
            for (int v = 0; v < 5; v++)
                cum[v] = acc += kinds[kd].sev[v];
            size_t sev = rng_pick(&r, cum, 5);
            int64_t resolved = t + (int64_t)(rng_lognormal(&r, fix_hours[sev], 0.8) * MS_HOUR);
            int64_t age_days = g->days - 1 - d;
            const char *status;
            if (resolved < g->limit_ms && (age_days > 7 || rng_chance(&r, 0.4)))
                status = "resolved";
            else
                status = rng_chance(&r, 0.5) ? "mitigated" : "open";
            char *p = w_line(&g->w);
            p = PUTL(p, "{\"system_code\":\"");
            p = put_raw(p, g->sys[s].def->code);
            p = PUTL(p, "\",\"event_id\":\"");
            p = put_id(p, "SE", g->first_day + d, i + 1, 3);
            p = PUTL(p, "\",\"detected_at\":");
            p = put_time(p, t, &g->dc1);
            p = PUTL(p, ",\"severity\":\"");
            p = put_raw(p, sev_name[sev]);
            p = PUTL(p, "\",\"category\":\"");
            p = put_raw(p, kinds[kd].category);
            p = PUTL(p, "\",\"description\":");
            p = put_str(p, kinds[kd].description);
            p = PUTL(p, ",\"status\":\"");
            p = put_raw(p, status);
            *p++ = '"';
            if (status[0] == 'r') {
                p = PUTL(p, ",\"resolved_at\":");
                p = put_time(p, resolved, &g->dc2);
            }
            *p++ = '}';
            w_end(&g->w, p);
        }
    }
}

static void gen_training_stats(struct gen *g)
{
    struct rng r;
    rng_seed(&r, g->seed, 6);
    int64_t y;
    unsigned m, dd;
    dtm_civil_from_days(g->first_day, &y, &m, &dd);
    int64_t last_day = g->first_day + g->days - 1;
    int64_t limit_day = floor_div(g->limit_ms + TZ_MS - 1, MS_DAY);
    for (;;) {
        int64_t ps = dtm_days_from_civil(y, m, 1);
        if (ps > last_day || ps > limit_day)
            break;
        for (size_t s = 0; s < NSYS; s++) {
            if (s == SYS_OFFLINE && ps >= g->first_day + g->cut)
                continue;
            const struct sysrt *sy = &g->sys[s];
            size_t norgs = sy->def->region ? 2 : 1;
            for (size_t o = 0; o < norgs; o++) {
                uint32_t courses = 1 + rng_below(&r, o ? 4 : 10);
                char *p = w_line(&g->w);
                p = PUTL(p, "{\"system_code\":\"");
                p = put_raw(p, sy->def->code);
                p = PUTL(p, "\",\"org_code\":\"");
                p = put_raw(p, sy->agency[o]);
                p = PUTL(p, "\",\"period_type\":\"month\",\"period_start\":");
                p = put_date(p, ps);
                p = PUTL(p, ",\"courses\":");
                p = put_u64(p, courses);
                p = PUTL(p, ",\"trainees\":");
                p = put_u64(p, courses * (15 + rng_below(&r, 60)));
                p = PUTL(p, ",\"experts\":");
                p = put_u64(p, 2 + rng_below(&r, o ? 8 : 30));
                uint32_t half_hours = courses * (8 + rng_below(&r, 64));
                p = PUTL(p, ",\"hours\":");
                p = put_u64(p, half_hours / 2);
                if (half_hours % 2)
                    p = PUTL(p, ".5");
                *p++ = '}';
                w_end(&g->w, p);
            }
        }
        if (++m > 12) {
            m = 1;
            y++;
        }
    }
}

static void gen_inspections(struct gen *g)
{
    static const struct {
        const char *type, *prefix;
        double weight;
        const char *summary[3];
        const char *outcome[2];
    } kinds[] = {
        {"inspection",
         "TTR",
         25,
         {"Thanh tra việc chấp hành quy định về giao dịch điện tử và bảo đảm an toàn thông tin",
          "Kiểm tra việc lưu trữ nhật ký kết nối, chia sẻ dữ liệu theo quy định",
          "Thanh tra việc thu phí, lệ phí trực tuyến trên hệ thống"},
         {"Kết luận thanh tra: cơ bản chấp hành đúng quy định; kiến nghị khắc phục 03 tồn tại",
          "Kết luận thanh tra: yêu cầu bổ sung quy chế vận hành và phương án dự phòng"}},
        {"complaint",
         "KN",
         30,
         {"Công dân khiếu nại việc hồ sơ trực tuyến bị trả lại không nêu rõ lý do",
          "Khiếu nại việc trễ hạn giải quyết hồ sơ đăng ký biến động đất đai",
          "Khiếu nại việc bị trừ tiền hai lần khi thanh toán lệ phí trực tuyến"},
         {"Đã giải quyết: khiếu nại đúng một phần; đã hoàn trả lệ phí cho công dân",
          "Đã giải quyết: khiếu nại không có cơ sở; đã trả lời bằng văn bản"}},
        {"denunciation",
         "TC",
         10,
         {"Tố cáo cán bộ yêu cầu nộp thêm giấy tờ ngoài quy định",
          "Tố cáo hành vi lợi dụng tài khoản dịch vụ công để thu thập thông tin cá nhân",
          "Tố cáo việc nhận tiền để giải quyết hồ sơ trước hạn"},
         {"Tố cáo không có cơ sở", "Tố cáo đúng; đã xử lý kỷ luật khiển trách cán bộ vi phạm"}},
        {"violation",
         "VP",
         15,
         {"Không lưu trữ nhật ký kết nối đủ thời hạn 01 năm",
          "Chia sẻ dữ liệu cá nhân khi chưa có sự đồng ý của chủ thể dữ liệu",
          "Không che dữ liệu cá nhân trước khi chia sẻ cho hệ thống khác"},
         {"Xử phạt vi phạm hành chính 20.000.000 đồng; yêu cầu khắc phục trong 30 ngày",
          "Yêu cầu khắc phục; đã kiểm tra lại và xác nhận hoàn thành"}},
        {"incident",
         "SC",
         20,
         {"Gián đoạn dịch vụ do sự cố đường truyền tới trung tâm dữ liệu",
          "Mất kết nối tới CSDL quốc gia về dân cư trong giờ cao điểm",
          "Hệ thống bị tấn công từ chối dịch vụ (DDoS)"},
         {"Đã khắc phục, khôi phục dịch vụ sau 4 giờ; bổ sung phương án dự phòng",
          "Đã khắc phục; báo cáo sự cố gửi Cục Chuyển đổi số quốc gia"}},
    };
    double cum[DTM_ARRAY_LEN(kinds)], acc = 0;
    for (size_t i = 0; i < DTM_ARRAY_LEN(kinds); i++)
        cum[i] = acc += kinds[i].weight;
    struct rng r;
    rng_seed(&r, g->seed, 8);
    for (size_t s = 0; s < NSYS; s++) {
        const struct sysrt *sy = &g->sys[s];
        int64_t span = s == SYS_OFFLINE ? g->cut : g->days;
        if (span <= 0)
            continue;
        unsigned n = 3 + rng_below(&r, 6);
        for (unsigned i = 0; i < n; i++) {
            int64_t d = rng_below(&r, (uint32_t)span);
            int64_t t = random_time(g, &r, d, true);
            if (t == INT64_MIN)
                continue;
            size_t kd = rng_pick(&r, cum, DTM_ARRAY_LEN(kinds));
            int64_t closed = t + (3 + rng_below(&r, 40)) * MS_DAY;
            closed += rng_below(&r, 8) * MS_HOUR;
            const char *status = closed < g->limit_ms && rng_chance(&r, 0.85) ? "closed"
                                 : rng_chance(&r, 0.6)                        ? "in_progress"
                                                                              : "open";
            int64_t y;
            unsigned m, dd;
            dtm_civil_from_days(g->first_day + d, &y, &m, &dd);
            char *p = w_line(&g->w);
            p = PUTL(p, "{\"system_code\":\"");
            p = put_raw(p, sy->def->code);
            p = PUTL(p, "\",\"case_id\":\"");
            p = put_raw(p, kinds[kd].prefix);
            *p++ = '-';
            p = put_u64w(p, (uint64_t)y, 4);
            *p++ = '-';
            p = put_u64w(p, 100 + i * 7 + rng_below(&r, 7), 4);
            p = PUTL(p, "\",\"case_type\":\"");
            p = put_raw(p, kinds[kd].type);
            p = PUTL(p, "\",\"status\":\"");
            p = put_raw(p, status);
            p = PUTL(p, "\",\"opened_at\":");
            p = put_time(p, t, &g->dc1);
            if (status[0] == 'c') {
                p = PUTL(p, ",\"closed_at\":");
                p = put_time(p, closed, &g->dc2);
            }
            p = PUTL(p, ",\"org_code\":\"");
            p = put_raw(p, sy->agency[rng_below(&r, (uint32_t)sy->nag)]);
            p = PUTL(p, "\",\"summary\":");
            p = put_str(p, kinds[kd].summary[rng_below(&r, 3)]);
            if (status[0] == 'c') {
                p = PUTL(p, ",\"outcome\":");
                p = put_str(p, kinds[kd].outcome[rng_below(&r, 2)]);
            }
            *p++ = '}';
            w_end(&g->w, p);
        }
    }
}

static char *put_doc(char *p, const char *sys, const char *no, const char *title, const char *type,
                     const char *issuer, int64_t issued, int64_t effective, const char *summary,
                     const char *url)
{
    p = PUTL(p, "{\"system_code\":\"");
    p = put_raw(p, sys);
    p = PUTL(p, "\",\"doc_no\":");
    p = put_str(p, no);
    p = PUTL(p, ",\"title\":");
    p = put_str(p, title);
    p = PUTL(p, ",\"doc_type\":\"");
    p = put_raw(p, type);
    p = PUTL(p, "\",\"issuer\":");
    p = put_str(p, issuer);
    p = PUTL(p, ",\"issued_at\":");
    p = put_date(p, issued);
    if (effective >= 0) {
        p = PUTL(p, ",\"effective_at\":");
        p = put_date(p, effective);
    }
    if (summary) {
        p = PUTL(p, ",\"summary\":");
        p = put_str(p, summary);
    }
    if (url) {
        p = PUTL(p, ",\"url\":");
        p = put_str(p, url);
    }
    *p++ = '}';
    return p;
}

static void gen_documents(struct gen *g)
{
    /* national documents on electronic transactions, sent by the national portal */
    static const struct {
        const char *no, *title, *type, *issuer;
        int y, m, d, ey, em, ed; /* issued, effective (ey 0 = none) */
        const char *summary;
    } national[] = {
        {"20/2023/QH15", "Luật Giao dịch điện tử", "legal", "Quốc hội", 2023, 6, 22, 2024, 7, 1,
         "Quy định về thực hiện giao dịch điện tử, giá trị pháp lý của thông điệp dữ liệu, chữ ký "
         "điện tử và hệ thống thông tin phục vụ giao dịch điện tử."},
        {"13/2023/NĐ-CP", "Nghị định về bảo vệ dữ liệu cá nhân", "legal", "Chính phủ", 2023, 4, 17,
         2023, 7, 1,
         "Quy định về bảo vệ dữ liệu cá nhân và trách nhiệm của cơ quan, tổ chức, cá nhân."},
        {"69/2024/NĐ-CP", "Nghị định quy định về định danh và xác thực điện tử", "legal",
         "Chính phủ", 2024, 6, 25, 2024, 7, 1,
         "Quy định về định danh, xác thực điện tử đối với công dân, cơ quan, tổ chức."},
        {"45/2020/NĐ-CP", "Nghị định về thực hiện thủ tục hành chính trên môi trường điện tử",
         "legal", "Chính phủ", 2020, 4, 8, 2020, 5, 22, NULL},
        {"60/2024/QH15", "Luật Dữ liệu", "legal", "Quốc hội", 2024, 11, 30, 2025, 7, 1,
         "Quy định về dữ liệu số, xây dựng, phát triển, bảo vệ, quản trị, xử lý, sử dụng dữ liệu "
         "số."},
        {"06/QĐ-TTg",
         "Quyết định phê duyệt Đề án phát triển ứng dụng dữ liệu về dân cư, định danh và xác thực "
         "điện tử phục vụ chuyển đổi số quốc gia giai đoạn 2022 - 2025, tầm nhìn đến năm 2030",
         "plan", "Thủ tướng Chính phủ", 2022, 1, 6, 0, 0, 0, NULL},
        {"942/QĐ-TTg",
         "Quyết định phê duyệt Chiến lược phát triển Chính phủ điện tử hướng tới Chính phủ số giai "
         "đoạn 2021 - 2025, định hướng đến năm 2030",
         "strategy", "Thủ tướng Chính phủ", 2021, 6, 15, 0, 0, 0, NULL},
        {"749/QĐ-TTg",
         "Quyết định phê duyệt Chương trình Chuyển đổi số quốc gia đến năm 2025, định hướng đến "
         "năm 2030",
         "strategy", "Thủ tướng Chính phủ", 2020, 6, 3, 0, 0, 0, NULL},
    };
    int64_t limit_day = floor_div(g->limit_ms + TZ_MS - 1, MS_DAY);
    int64_t last_day = DTM_MIN(g->first_day + g->days - 1, limit_day);
    for (size_t i = 0; i < DTM_ARRAY_LEN(national); i++) {
        int64_t issued =
            dtm_days_from_civil(national[i].y, (unsigned)national[i].m, (unsigned)national[i].d);
        if (issued > last_day)
            continue;
        int64_t eff = national[i].ey ? dtm_days_from_civil(national[i].ey, (unsigned)national[i].em,
                                                           (unsigned)national[i].ed)
                                     : -1;
        char *p = w_line(&g->w);
        p = put_doc(p, system_defs[SYS_PORTAL].code, national[i].no, national[i].title,
                    national[i].type, national[i].issuer, issued, eff, national[i].summary,
                    "https://vanban.chinhphu.vn/");
        w_end(&g->w, p);
    }
    /* each system's own plan, and guidance from some ministries */
    struct rng r;
    rng_seed(&r, g->seed, 9);
    for (size_t s = 0; s < NSYS; s++) {
        const struct system_def *def = &system_defs[s];
        int64_t issued = g->first_day - 20 - rng_below(&r, 60);
        int64_t pyear;
        unsigned pm, pd;
        dtm_civil_from_days(issued, &pyear, &pm, &pd);
        char no[64], title[400], summary[600];
        snprintf(no, sizeof no, "%u/KH-%s", 20 + rng_below(&r, 380), def->abbr);
        if (def->place) {
            snprintf(title, sizeof title,
                     "Kế hoạch thực hiện Đề án 06 và chuyển đổi số trên địa bàn %s năm %lld",
                     def->place, (long long)pyear);
            snprintf(summary, sizeof summary,
                     "Mục tiêu: 100%% thủ tục hành chính đủ điều kiện được cung cấp trực tuyến "
                     "toàn trình; kết nối, chia sẻ dữ liệu với Cổng Dịch vụ công quốc gia và CSDL "
                     "quốc gia về dân cư; thời gian trung bình xử lý hồ sơ trực tuyến giảm %u%%.",
                     10 + rng_below(&r, 21));
        } else {
            snprintf(title, sizeof title, "Kế hoạch chuyển đổi số năm %lld của %s",
                     (long long)pyear, def->org);
            snprintf(summary, sizeof summary,
                     "Nâng cấp %s; bảo đảm an toàn thông tin theo cấp độ; kết nối với Nền tảng "
                     "tích hợp, chia sẻ dữ liệu quốc gia.",
                     def->name);
        }
        char *p = w_line(&g->w);
        p = put_doc(p, def->code, no, title, "plan", def->org, issued, issued, summary, NULL);
        w_end(&g->w, p);
        if (!def->region && rng_chance(&r, 0.6)) {
            static const char *const types[] = {"technical_regulation", "standard", "norm",
                                                "policy", "other"};
            size_t t = rng_below(&r, DTM_ARRAY_LEN(types));
            if (t == 0 && s == SYS_PORTAL) /* not a guide for connecting to itself */
                t = 3;
            int64_t iss2 = issued + 5 + rng_below(&r, 40);
            if (iss2 > last_day)
                continue;
            snprintf(no, sizeof no, "%u/QĐ-%s", 100 + rng_below(&r, 900), def->abbr);
            /* formats are literals (-Wformat=2): one snprintf per kind */
            switch (t) {
            case 0:
                snprintf(title, sizeof title,
                         "Hướng dẫn kỹ thuật kết nối, chia sẻ dữ liệu giữa %s và Cổng Dịch vụ "
                         "công quốc gia",
                         def->name);
                break;
            case 1:
                snprintf(title, sizeof title,
                         "Tiêu chuẩn cơ sở về cấu trúc thông điệp dữ liệu của %s", def->name);
                break;
            case 2:
                snprintf(title, sizeof title, "Định mức kinh tế - kỹ thuật vận hành %s", def->name);
                break;
            case 3:
                snprintf(title, sizeof title, "Quy chế khai thác, sử dụng dữ liệu của %s",
                         def->name);
                break;
            default:
                snprintf(title, sizeof title, "Quy trình ứng cứu sự cố an toàn thông tin của %s",
                         def->name);
                break;
            }
            p = w_line(&g->w);
            p = put_doc(p, def->code, no, title, types[t], def->org, iss2, iss2 + 15, NULL, NULL);
            w_end(&g->w, p);
        }
    }
}

/* ---- files and the public entry points */

static const struct {
    const char *dataset;
    void (*gen)(struct gen *g);
} files[] = {
    {"transactions", gen_transactions},
    {"service_stats", gen_service_stats},
    {"connection_logs", gen_connection_logs},
    {"security_events", gen_security_events},
    {"training_stats", gen_training_stats},
    {"inspections", gen_inspections},
    {"documents", gen_documents},
};

static void set_err(char *err, size_t errsz, const char *msg, const char *arg)
{
    if (err && errsz)
        snprintf(err, errsz, "%s%s%s", msg, arg ? ": " : "", arg ? arg : "");
}

void dtm_demo_free(struct dtm_demo_out *out)
{
    if (!out)
        return;
    for (size_t i = 0; i < out->nfiles; i++) {
        if (out->files)
            free(out->files[i]);
        if (out->datasets)
            free(out->datasets[i]);
    }
    free(out->files);
    free(out->datasets);
    free(out->systems);
    memset(out, 0, sizeof *out);
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* dir made absolute against the working directory (malloc'd; NULL with errno set). */
static char *abs_dir(const char *dir)
{
    char cwd[4096];
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (dir[0] == '/') {
        char *p = malloc(n + 1);
        if (!p)
            return NULL;
        memcpy(p, dir, n);
        p[n] = 0;
        return p;
    }
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    size_t len = strlen(cwd) + 1 + n + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%.*s", cwd, (int)n, dir);
    return p;
}

int dtm_demo_generate(const char *dir, const struct dtm_demo_opts *o, struct dtm_demo_out *out,
                      char *err, size_t errsz)
{
    int rc = DTM_OK;
    struct gen *g = NULL;
    char *absdir = NULL, *path = NULL;
    char msg[160];

    if (!out) {
        set_err(err, errsz, "no output given", NULL);
        return DTM_EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (!dir || !o) {
        set_err(err, errsz, "the demo needs a directory and options", NULL);
        return DTM_EINVAL;
    }
    int days = o->days ? o->days : 90;
    size_t target = o->transactions ? o->transactions : 1000000;
    if (days < 1 || days > 3660 || target > 2000000000u || o->end_day - days + 1 < 0 ||
        o->end_day > 2932896 /* 9999-12-31 */) {
        set_err(err, errsz,
                "demo options out of range (days 1..3660, up to 2e9 transactions, dates in "
                "1970..9999)",
                NULL);
        return DTM_EINVAL;
    }
    absdir = abs_dir(dir);
    if (!absdir) {
        int e = errno;
        set_err(err, errsz, "cannot resolve the demo directory", strerror(e));
        return e == ENOMEM ? DTM_ENOMEM : DTM_EIO;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        rc = DTM_ENOMEM;
        goto out;
    }
    g->seed = o->seed;
    g->days = days;
    g->first_day = o->end_day - days + 1;
    g->cut = days - DTM_MAX(1, days / 6);
    g->target = target;
    g->limit_ms = day_start_ms(o->end_day + 1);
    if (o->now_us && o->now_us / 1000 < g->limit_ms)
        g->limit_ms = o->now_us / 1000;
    g->dc1.day = g->dc2.day = INT64_MIN;
    rng_seed(&g->rng, o->seed, 1);
    rng_seed(&g->trng, o->seed, 2);
    setup_systems(g);
    setup_incidents(g);
    g->agg = calloc((size_t)NSYS * MAX_SVC * (size_t)days, sizeof *g->agg);
    g->cell_n = calloc((size_t)days * 24, sizeof *g->cell_n);
    g->w.buf = malloc(WBUF_SIZE);
    size_t nf = DTM_ARRAY_LEN(files);
    out->files = calloc(nf, sizeof *out->files);
    out->datasets = calloc(nf, sizeof *out->datasets);
    out->systems = calloc(NSYS, sizeof *out->systems);
    if (!g->agg || !g->cell_n || !g->w.buf || !out->files || !out->datasets || !out->systems) {
        rc = DTM_ENOMEM;
        goto out;
    }
    if (!plan_cells(g)) {
        set_err(err, errsz, "now_us lies before the first demo day", NULL);
        rc = DTM_EINVAL;
        goto out;
    }

    size_t plen = strlen(absdir) + 64;
    for (size_t i = 0; i < nf; i++) {
        path = malloc(plen);
        if (!path) {
            rc = DTM_ENOMEM;
            goto out;
        }
        snprintf(path, plen, "%s/%s.ndjson", absdir, files[i].dataset);
        g->w.fp = fopen(path, "w");
        if (!g->w.fp) {
            int e = errno;
            snprintf(msg, sizeof msg, "cannot create %s", path);
            set_err(err, errsz, msg, strerror(e));
            rc = DTM_EIO;
            goto out;
        }
        g->w.path = path;
        g->w.n = 0;
        g->w.err = 0;
        g->w.lines = 0;
        g->dc1.day = g->dc2.day = INT64_MIN;
        files[i].gen(g);
        w_flush(&g->w);
        int e = g->w.err;
        if (fclose(g->w.fp) != 0 && !e)
            e = errno ? errno : EIO;
        g->w.fp = NULL;
        if (e) {
            snprintf(msg, sizeof msg, "cannot write %s", path);
            set_err(err, errsz, msg, strerror(e));
            rc = DTM_EIO;
            goto out;
        }
        out->files[i] = path;
        path = NULL;
        out->datasets[i] = str_dup(files[i].dataset);
        out->records[i] = g->w.lines;
        out->nfiles = i + 1;
        if (!out->datasets[i]) {
            rc = DTM_ENOMEM;
            goto out;
        }
    }

    for (size_t s = 0; s < NSYS; s++) {
        const struct system_def *def = &system_defs[s];
        struct dtm_demo_system *ds = &out->systems[s];
        snprintf(ds->code, sizeof ds->code, "%s", def->code);
        snprintf(ds->name, sizeof ds->name, "%s", def->name);
        snprintf(ds->org, sizeof ds->org, "%s", def->org);
        ds->role = s == SYS_PORTAL ? "aggregator" : "source";
        snprintf(ds->parent, sizeof ds->parent, "%s",
                 def->region ? system_defs[SYS_PORTAL].code : "");
        ds->offline = s == SYS_OFFLINE;
        ds->quality = s == SYS_QUALITY;
        ds->last_seen_us = g->sys[s].last_ms == INT64_MIN ? 0 : g->sys[s].last_ms * 1000;
    }
    out->nsystems = NSYS;
    out->invalid = g->invalid;
    out->duplicates = g->dups;
    out->mismatches = g->mismatches;

out:
    if (rc == DTM_ENOMEM)
        set_err(err, errsz, "out of memory while generating the demo data", NULL);
    if (g) {
        if (g->w.fp)
            fclose(g->w.fp);
        free(g->w.buf);
        free(g->agg);
        free(g->cell_n);
        free(g);
    }
    free(path);
    free(absdir);
    if (rc != DTM_OK)
        dtm_demo_free(out);
    return rc;
}
