/* soap/wsdl.c — the WSDL 1.1 of GET /soap?wsdl (document/literal, SOAP 1.1 and 1.2 bindings)
 * and one XSD per dataset generated from the data dictionary, so that a client generator
 * (zeep, wsimport, wsdl2java, dotnet-svcutil) gets a typed record class per dataset. Built at
 * request time from the registry: a dataset defined with PUT /api/v1/datasets/{code} appears at
 * once. Types: string → xs:string (maxLength, pattern where XSD says the same), integer →
 * xs:long, decimal → xs:decimal (min/max as inclusive bounds), boolean, date, datetime →
 * xs:boolean, xs:date, xs:dateTime, enum → xs:string enumeration; required → minOccurs 1. The
 * server validates every record against the definition anyway: the schema is a contract for
 * clients, never the check. */
#include "soap/soap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A PCRE escape XSD reads the same way (\d, \s, \w are Unicode-wide in XSD, a superset: the
 * server's PCRE check stays the exact one). */
static bool plain_escape(char c)
{
    return strchr("dDsSwWnrt.\\-^$|?*+()[]{}/", c) != NULL;
}

bool dtm_soap_xsd_pattern(const char *pcre, struct dtm_buf *out)
{
    size_t n = strlen(pcre);
    bool in_class = false;
    if (n < 2 || pcre[0] != '^' || pcre[n - 1] != '$' || (n >= 3 && pcre[n - 2] == '\\'))
        return false; /* XSD patterns match the whole value: only an anchored PCRE is the same */
    for (size_t i = 1; i + 1 < n; i++) {
        char c = pcre[i];
        if (c == '\\') {
            if (i + 2 >= n || !plain_escape(pcre[i + 1]))
                return false;
            i++;
            continue;
        }
        if (in_class) {
            if (c == '[')
                return false; /* POSIX classes, nested sets */
            if (c == ']')
                in_class = false;
            continue;
        }
        switch (c) {
        case '[':
            in_class = true;
            if (pcre[i + 1] == '^')
                i++;
            if (pcre[i + 1] == ']')
                return false;
            break;
        case '(':
            if (pcre[i + 1] == '?')
                return false; /* lookarounds, non-capturing groups, flags */
            break;
        case '^':
        case '$':
            return false;
        case '*':
        case '+':
        case '?':
        case '}':
            if (pcre[i + 1] == '?' || pcre[i + 1] == '+')
                return false; /* lazy or possessive */
            break;
        case '{':
            if (pcre[i + 1] == ',')
                return false;
            break;
        default:
            break;
        }
    }
    if (in_class)
        return false;
    dtm_buf_add(out, pcre + 1, n - 2);
    return true;
}

/* A bound as an XSD number (no exponent); false when it cannot be written so. */
static bool number(double v, bool integer, char *out, size_t outsz)
{
    if (!isfinite(v) || fabs(v) > 9e15)
        return false;
    if (integer)
        snprintf(out, outsz, "%.0f", v);
    else
        snprintf(out, outsz, "%.6f", v);
    if (!integer) { /* trim trailing zeros: 12.500000 → 12.5 */
        size_t k = strlen(out);
        while (k > 1 && out[k - 1] == '0')
            out[--k] = '\0';
        if (k && out[k - 1] == '.')
            out[--k] = '\0';
    }
    return true;
}

static void doc(struct dtm_buf *b, const struct dtm_i18n_text *t, const char *indent)
{
    const char *s = t->en ? t->en : t->vi;
    if (!s)
        return;
    dtm_buf_printf(b, "%s<xs:annotation><xs:documentation>", indent);
    dtm_buf_xml(b, dtm_str_c(s));
    if (t->vi && t->en) {
        dtm_buf_addc(b, " / ");
        dtm_buf_xml(b, dtm_str_c(t->vi));
    }
    dtm_buf_addc(b, "</xs:documentation></xs:annotation>\n");
}

static void field_type(struct dtm_buf *b, const struct dtm_field_def *f)
{
    static const char *const base[] = {
        [DTM_T_STRING] = "xs:string",   [DTM_T_INTEGER] = "xs:long",
        [DTM_T_DECIMAL] = "xs:decimal", [DTM_T_BOOLEAN] = "xs:boolean",
        [DTM_T_DATE] = "xs:date",       [DTM_T_DATETIME] = "xs:dateTime",
        [DTM_T_ENUM] = "xs:string",
    };
    char lo[48], hi[48];
    bool integer = f->type == DTM_T_INTEGER;
    bool has_lo = (f->type == DTM_T_INTEGER || f->type == DTM_T_DECIMAL) && f->has_min &&
                  number(integer ? ceil(f->min) : f->min, integer, lo, sizeof(lo));
    bool has_hi = (f->type == DTM_T_INTEGER || f->type == DTM_T_DECIMAL) && f->has_max &&
                  number(integer ? floor(f->max) : f->max, integer, hi, sizeof(hi));
    struct dtm_buf pat;
    bool has_pat = false;
    dtm_buf_init(&pat, 4096);
    if (f->type == DTM_T_STRING && f->pattern)
        has_pat = dtm_soap_xsd_pattern(f->pattern, &pat) && !pat.err;
    if (!has_lo && !has_hi && !has_pat && f->type != DTM_T_ENUM &&
        !(f->type == DTM_T_STRING && f->max_length > 0)) {
        dtm_buf_printf(b, " type=\"%s\">\n", base[f->type]);
        dtm_buf_free(&pat);
        return;
    }
    dtm_buf_printf(b, ">\n        <xs:simpleType><xs:restriction base=\"%s\">", base[f->type]);
    if (f->type == DTM_T_STRING && f->max_length > 0)
        dtm_buf_printf(b, "<xs:maxLength value=\"%lld\"/>", (long long)f->max_length);
    if (has_pat) {
        dtm_buf_addc(b, "<xs:pattern value=\"");
        dtm_buf_xml(b, (struct dtm_str){pat.p, pat.n});
        dtm_buf_addc(b, "\"/>");
    }
    if (has_lo)
        dtm_buf_printf(b, "<xs:minInclusive value=\"%s\"/>", lo);
    if (has_hi)
        dtm_buf_printf(b, "<xs:maxInclusive value=\"%s\"/>", hi);
    for (size_t i = 0; f->type == DTM_T_ENUM && i < f->nvalues; i++) {
        dtm_buf_addc(b, "<xs:enumeration value=\"");
        dtm_buf_xml(b, dtm_str_c(f->values[i]));
        dtm_buf_addc(b, "\"/>");
    }
    dtm_buf_addc(b, "</xs:restriction></xs:simpleType>\n");
    dtm_buf_free(&pat);
}

/* The xs:schema element of one dataset (attributes extra: namespace declarations). */
static void dataset_schema(struct dtm_buf *b, const struct dtm_dataset *ds, const char *extra)
{
    dtm_buf_printf(b,
                   "  <xs:schema targetNamespace=\"" DTM_SOAP_DATASET_NS
                   "%s\" xmlns:d=\"" DTM_SOAP_DATASET_NS
                   "%s\" elementFormDefault=\"qualified\"%s>\n",
                   ds->code, ds->code, extra);
    doc(b, &ds->title, "    ");
    dtm_buf_addc(b, "    <xs:complexType name=\"Record\">\n      <xs:sequence>\n");
    for (size_t i = 0; i < ds->nfields; i++) {
        const struct dtm_field_def *f = &ds->fields[i];
        /* system_code defaults to the authenticated system: never required of a sender */
        dtm_buf_printf(b, "        <xs:element name=\"%s\" minOccurs=\"%d\"", f->name,
                       f->required && (int)i != ds->system_field ? 1 : 0);
        field_type(b, f);
        dtm_buf_addc(b, "        </xs:element>\n");
    }
    dtm_buf_addc(b, "      </xs:sequence>\n    </xs:complexType>\n");
    dtm_buf_addc(b, "    <xs:element name=\"record\" type=\"d:Record\"/>\n");
    dtm_buf_addc(b, "  </xs:schema>\n");
}

int dtm_soap_xsd(const struct dtm_dataset *ds, struct dtm_buf *out)
{
    dtm_buf_addc(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    dataset_schema(out, ds, " xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"");
    return out->err;
}

static const char *const ops[] = {"SubmitRecords", "GetBatchStatus", "QueryStats", "Ping"};

/* The operations' schema (urn:dtm:soap): requests, answers and the fault detail. */
static void service_schema(struct dtm_buf *b, const struct dtm_dict *dict)
{
    size_t nds = dtm_dict_count(dict);
    dtm_buf_addc(b, "  <xs:schema targetNamespace=\"" DTM_SOAP_NS
                    "\" elementFormDefault=\"qualified\"");
    for (size_t i = 0; i < nds; i++)
        dtm_buf_printf(b, " xmlns:d%zu=\"" DTM_SOAP_DATASET_NS "%s\"", i,
                       dtm_dict_at(dict, i)->code);
    dtm_buf_addc(b, ">\n");
    for (size_t i = 0; i < nds; i++)
        dtm_buf_printf(b, "    <xs:import namespace=\"" DTM_SOAP_DATASET_NS "%s\"/>\n",
                       dtm_dict_at(dict, i)->code);
    /* records: one optional repeated element per dataset, named by its code */
    dtm_buf_addc(b, "    <xs:complexType name=\"Records\">\n"
                    "      <xs:annotation><xs:documentation>The records, as elements named by "
                    "the dataset's code (the one named in dataset).</xs:documentation>"
                    "</xs:annotation>\n      <xs:sequence>\n");
    for (size_t i = 0; i < nds; i++)
        dtm_buf_printf(b,
                       "        <xs:element name=\"%s\" type=\"d%zu:Record\" minOccurs=\"0\" "
                       "maxOccurs=\"unbounded\"/>\n",
                       dtm_dict_at(dict, i)->code, i);
    dtm_buf_addc(b, "      </xs:sequence>\n    </xs:complexType>\n");
    dtm_buf_addc(
        b, "    <xs:element name=\"SubmitRecords\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"dataset\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"records\" type=\"tns:Records\"/>\n"
           "        <xs:element name=\"atomic\" type=\"xs:boolean\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"mode\" minOccurs=\"0\"><xs:simpleType><xs:restriction "
           "base=\"xs:string\"><xs:enumeration value=\"raw\"/><xs:enumeration value=\"masked\"/>"
           "</xs:restriction></xs:simpleType></xs:element>\n"
           "        <xs:element name=\"idempotencyKey\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:complexType name=\"RecordError\"><xs:sequence>\n"
           "      <xs:element name=\"index\" type=\"xs:long\"/>\n"
           "      <xs:element name=\"field\" type=\"xs:string\"/>\n"
           "      <xs:element name=\"code\" type=\"xs:string\"/>\n"
           "      <xs:element name=\"message\" type=\"xs:string\"/>\n"
           "    </xs:sequence></xs:complexType>\n"
           "    <xs:complexType name=\"RecordErrors\"><xs:sequence>\n"
           "      <xs:element name=\"error\" type=\"tns:RecordError\" minOccurs=\"0\" "
           "maxOccurs=\"unbounded\"/>\n    </xs:sequence></xs:complexType>\n"
           "    <xs:element name=\"SubmitRecordsResponse\">\n"
           "      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"accepted\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"duplicates\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"updated\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"rejected\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"errors\" type=\"tns:RecordErrors\"/>\n"
           "        <xs:element name=\"receipt\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"replayed\" type=\"xs:boolean\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:element name=\"GetBatchStatus\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"id\" type=\"xs:string\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:element name=\"GetBatchStatusResponse\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"id\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"dataset\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"systemCode\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"status\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"total\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"accepted\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"duplicates\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"updated\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"rejected\" type=\"xs:long\"/>\n"
           "        <xs:element name=\"progress\" type=\"xs:double\"/>\n"
           "        <xs:element name=\"format\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"priority\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"createdAt\" type=\"xs:dateTime\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"startedAt\" type=\"xs:dateTime\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"finishedAt\" type=\"xs:dateTime\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"error\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:element name=\"QueryStats\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"dataset\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"metrics\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"groupBy\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"interval\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"from\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"to\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"where\" type=\"xs:string\" minOccurs=\"0\" "
           "maxOccurs=\"8\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:complexType name=\"Columns\"><xs:sequence>\n"
           "      <xs:element name=\"column\" type=\"xs:string\" minOccurs=\"0\" "
           "maxOccurs=\"unbounded\"/>\n    </xs:sequence></xs:complexType>\n"
           "    <xs:complexType name=\"Row\"><xs:sequence>\n"
           "      <xs:element name=\"v\" type=\"xs:string\" nillable=\"true\" minOccurs=\"0\" "
           "maxOccurs=\"unbounded\"/>\n    </xs:sequence></xs:complexType>\n"
           "    <xs:complexType name=\"Rows\"><xs:sequence>\n"
           "      <xs:element name=\"row\" type=\"tns:Row\" minOccurs=\"0\" "
           "maxOccurs=\"unbounded\"/>\n    </xs:sequence></xs:complexType>\n"
           "    <xs:element name=\"QueryStatsResponse\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"columns\" type=\"tns:Columns\"/>\n"
           "        <xs:element name=\"rows\" type=\"tns:Rows\"/>\n"
           "        <xs:element name=\"plan\" type=\"xs:string\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:element name=\"Ping\">\n      <xs:complexType><xs:sequence/></xs:complexType>\n"
           "    </xs:element>\n"
           "    <xs:element name=\"PingResponse\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"status\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"version\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"systemCode\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"time\" type=\"xs:dateTime\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "    <xs:element name=\"problem\">\n      <xs:complexType><xs:sequence>\n"
           "        <xs:element name=\"code\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"status\" type=\"xs:int\"/>\n"
           "        <xs:element name=\"title\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"detail\" type=\"xs:string\"/>\n"
           "        <xs:element name=\"requestId\" type=\"xs:string\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"retryAfter\" type=\"xs:long\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"line\" type=\"xs:long\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"column\" type=\"xs:long\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"accepted\" type=\"xs:long\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"rejected\" type=\"xs:long\" minOccurs=\"0\"/>\n"
           "        <xs:element name=\"errors\" type=\"tns:RecordErrors\" minOccurs=\"0\"/>\n"
           "      </xs:sequence></xs:complexType>\n    </xs:element>\n"
           "  </xs:schema>\n");
}

static void binding(struct dtm_buf *b, const char *name, const char *soapns)
{
    dtm_buf_printf(b,
                   "  <wsdl:binding name=\"%s\" type=\"tns:DtmPortType\">\n"
                   "    <%s:binding style=\"document\" "
                   "transport=\"http://schemas.xmlsoap.org/soap/http\"/>\n",
                   name, soapns);
    for (size_t i = 0; i < DTM_ARRAY_LEN(ops); i++)
        dtm_buf_printf(b,
                       "    <wsdl:operation name=\"%s\">\n"
                       "      <%s:operation soapAction=\"" DTM_SOAP_NS
                       "/%s\" style=\"document\"/>\n"
                       "      <wsdl:input><%s:body use=\"literal\"/></wsdl:input>\n"
                       "      <wsdl:output><%s:body use=\"literal\"/></wsdl:output>\n"
                       "      <wsdl:fault name=\"Problem\"><%s:fault name=\"Problem\" "
                       "use=\"literal\"/></wsdl:fault>\n"
                       "    </wsdl:operation>\n",
                       ops[i], soapns, ops[i], soapns, soapns, soapns);
    dtm_buf_addc(b, "  </wsdl:binding>\n");
}

int dtm_soap_wsdl(const struct dtm_dict *dict, const char *address, struct dtm_buf *out)
{
    struct dtm_buf *b = out;
    dtm_buf_addc(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<wsdl:definitions name=\"DTM\" targetNamespace=\"" DTM_SOAP_NS "\"\n"
                    "    xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"\n"
                    "    xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"\n"
                    "    xmlns:soap12=\"http://schemas.xmlsoap.org/wsdl/soap12/\"\n"
                    "    xmlns:xs=\"http://www.w3.org/2001/XMLSchema\"\n"
                    "    xmlns:tns=\"" DTM_SOAP_NS "\">\n"
                    "  <wsdl:documentation>DTM — receiving and sharing e-transaction data. "
                    "Authenticate with the X-API-Key HTTP header or a WS-Security "
                    "UsernameToken (PasswordText): username = system code, password = API key. "
                    "SOAP 1.1 as text/xml, SOAP 1.2 as application/soap+xml."
                    "</wsdl:documentation>\n  <wsdl:types>\n");
    for (size_t i = 0; i < dtm_dict_count(dict); i++)
        dataset_schema(b, dtm_dict_at(dict, i), "");
    service_schema(b, dict);
    dtm_buf_addc(b, "  </wsdl:types>\n");
    for (size_t i = 0; i < DTM_ARRAY_LEN(ops); i++)
        dtm_buf_printf(b,
                       "  <wsdl:message name=\"%sRequest\"><wsdl:part name=\"parameters\" "
                       "element=\"tns:%s\"/></wsdl:message>\n"
                       "  <wsdl:message name=\"%sResponse\"><wsdl:part name=\"parameters\" "
                       "element=\"tns:%sResponse\"/></wsdl:message>\n",
                       ops[i], ops[i], ops[i], ops[i]);
    dtm_buf_addc(b, "  <wsdl:message name=\"ProblemFault\"><wsdl:part name=\"problem\" "
                    "element=\"tns:problem\"/></wsdl:message>\n"
                    "  <wsdl:portType name=\"DtmPortType\">\n");
    for (size_t i = 0; i < DTM_ARRAY_LEN(ops); i++)
        dtm_buf_printf(b,
                       "    <wsdl:operation name=\"%s\">\n"
                       "      <wsdl:input message=\"tns:%sRequest\"/>\n"
                       "      <wsdl:output message=\"tns:%sResponse\"/>\n"
                       "      <wsdl:fault name=\"Problem\" message=\"tns:ProblemFault\"/>\n"
                       "    </wsdl:operation>\n",
                       ops[i], ops[i], ops[i]);
    dtm_buf_addc(b, "  </wsdl:portType>\n");
    binding(b, "DtmSoap11", "soap");
    binding(b, "DtmSoap12", "soap12");
    dtm_buf_addc(b, "  <wsdl:service name=\"DtmService\">\n"
                    "    <wsdl:port name=\"DtmSoap11\" binding=\"tns:DtmSoap11\">"
                    "<soap:address location=\"");
    dtm_buf_xml(b, dtm_str_c(address));
    dtm_buf_addc(b, "\"/></wsdl:port>\n"
                    "    <wsdl:port name=\"DtmSoap12\" binding=\"tns:DtmSoap12\">"
                    "<soap12:address location=\"");
    dtm_buf_xml(b, dtm_str_c(address));
    dtm_buf_addc(b, "\"/></wsdl:port>\n  </wsdl:service>\n</wsdl:definitions>\n");
    return b->err;
}
