/**
 * xmlBridge(): a JSON API in front of an XML or SOAP service (or, with `client: 'xml'`, an XML API in front of a
 * JSON service). The request body is converted into the upstream plan (the client's request stays as sent); the
 * answer is converted by a buffering response filter, and only answers in the upstream's format are touched.
 * Parsing is hardened in lib/xml.ts: no DOCTYPE, no entities, no prototype keys, bounded depth and size.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ByteSize } from '../lib/byte-size';
import { getContext, planChanges } from '../lib/context';
import { ConfigError, GatewayError } from '../lib/errors';
import type { ErrorMode, FeatureDescriptor, Middleware } from '../lib/pipeline';
import { withGatewayErrors } from '../lib/pipeline';
import { respondOrNext } from '../lib/problem';
import { readBody } from '../lib/request-body';
import { addResponseFilter } from '../lib/response-filters';
import type { FilteredResponse, ResponseFilter } from '../lib/response-filters';
import { byteSize, defineSchema, errorMode, parseOptions } from '../lib/schema';
import type { Z } from '../lib/schema';
import { ConversionError, decodeText, isJsonType, isXmlName, isXmlType, localName, parseMediaType, XmlCodec } from '../lib/xml';

/** SOAP framing of the XML side. */
export interface SoapOptions {
  /** `'1.1'` (text/xml and a SOAPAction header) or `'1.2'` (application/soap+xml with an `action` parameter). Defaults to `'1.1'`. */
  version?: '1.1' | '1.2' | 1.1 | 1.2;
  /** The operation's action URI, sent as `SOAPAction` (1.1) or the content type's `action` (1.2), e.g. `'urn:orders#GetOrder'`. Defaults to none (an empty SOAPAction in 1.1). */
  action?: string;
  /** Put the JSON body into an Envelope's Body on the way to the XML side. Defaults to true. */
  wrap?: boolean;
  /** Give the JSON side the Body's content instead of the whole Envelope. Defaults to true. */
  unwrap?: boolean;
}

export interface XmlBridgeOptions {
  /**
   * What the client speaks: `'json'` (a JSON API in front of an XML service) or `'xml'` (an XML API in front of a
   * JSON service). The upstream speaks the other. Defaults to `'json'`.
   */
  client?: 'json' | 'xml';
  /**
   * The document element's name when the JSON leaves it out: JSON → XML wraps the body in it (`{ "id": 7 }` →
   * `<order><id>7</id></order>`), XML → JSON gives the document element's content. Defaults to none: the JSON then
   * carries it as its one member (`{ "order": { "id": 7 } }` ↔ `<order><id>7</id></order>`). With SOAP it is the
   * element inside the Body.
   */
  root?: string;
  /** A default namespace (`xmlns`) for the element the JSON body becomes (the root, or the Body's operation element). Defaults to none. */
  namespace?: string;
  /** Prefix of attribute keys in JSON: `<price currency="EUR">` ↔ `{ "@currency": "EUR" }`. Defaults to `'@'`. */
  attributePrefix?: string;
  /** Key of an element's text when it also has attributes or children. Defaults to `'#text'`. */
  textKey?: string;
  /**
   * Element paths that are always arrays, even with one element, as the JSON side sees them (after the SOAP Body
   * and `root` are unwrapped), `*` for any one element: `['order.lines.line']`. Defaults to none (one element is
   * an object, several are an array).
   */
  arrays?: string[];
  /** Turn XML text that reads as a number or boolean into a JSON number or boolean (`"007"` stays text). Defaults to false: values stay the strings written. */
  parseValues?: boolean;
  /** Keep namespace prefixes and `xmlns` attributes in the JSON (`'keep'`), or drop them (`'strip'`). Defaults to `'keep'`. */
  namespaces?: 'keep' | 'strip';
  /** SOAP framing: `'1.1'`, `'1.2'`, or `{ version, action, wrap, unwrap }`. Defaults to none (plain XML). */
  soap?: '1.1' | '1.2' | 1.1 | 1.2 | SoapOptions;
  /** Media type of the XML the bridge writes (without SOAP). Defaults to `'application/xml'`. */
  contentType?: string;
  /** Largest body converted, either way: a request over it is a 413, an answer over it a 502. Defaults to `'1mb'`. */
  limit?: ByteSize;
  /** Deepest nesting accepted, in elements. Defaults to 100. */
  maxDepth?: number;
  /** Answer errors as problem+json (`'respond'`, the default) or hand them to `next(err)`. */
  onError?: ErrorMode;
}

const DEFAULTS = { client: 'json', attributePrefix: '@', textKey: '#text', namespaces: 'keep', contentType: 'application/xml', limit: 1024 * 1024, maxDepth: 100 } as const;
const ENVELOPE_NS = { '1.1': 'http://schemas.xmlsoap.org/soap/envelope/', '1.2': 'http://www.w3.org/2003/05/soap-envelope' } as const;
const JSON_TYPE = 'application/json; charset=utf-8';
/** Longest fault code or string passed on to the client. */
const MAX_FAULT_TEXT = 1000;

const NAME_START = /^[\p{L}\p{N}_:.\s-]/u;

export const xmlBridgeSchema = defineSchema((z: Z) => {
  const name = z.string().refine(isXmlName, { error: 'must be an XML element name, e.g. "order" or "m:GetOrder"' });
  const version = z.union([z.enum(['1.1', '1.2']), z.literal(1.1), z.literal(1.2)], { error: `must be '1.1' or '1.2'` }).transform((value) => String(value) as '1.1' | '1.2');
  const soapObject = z.strictObject({
    version: version.default('1.1'),
    // eslint-disable-next-line no-control-regex -- a header value cannot carry control characters
    action: z.string().regex(/^[^"\\\s\x00-\x1f\x7f]+$/, { error: 'must be a URI without spaces or quotes, e.g. "urn:orders#GetOrder"' }).optional(),
    wrap: z.boolean().default(true),
    unwrap: z.boolean().default(true),
  });
  const marker = (what: string) => z.string().min(1).max(8).refine((value) => !NAME_START.test(value) && !/\s/.test(value), { error: `must be 1 to 8 characters that cannot start an XML name, e.g. "${what}"` });
  return z
    .strictObject(
      {
        client: z.enum(['json', 'xml'], { error: `must be 'json' or 'xml'` }).default(DEFAULTS.client),
        root: name.optional(),
        namespace: z.string().min(1).optional(),
        attributePrefix: marker('@').default(DEFAULTS.attributePrefix),
        textKey: marker('#text').default(DEFAULTS.textKey),
        arrays: z.array(z.string().regex(/^(\*|[^.*\s]+)(\.(\*|[^.*\s]+))*$/, { error: 'must be a dotted element path, e.g. "order.lines.line" or "*.item"' })).default([]),
        parseValues: z.boolean().default(false),
        namespaces: z.enum(['keep', 'strip'], { error: `must be 'keep' or 'strip'` }).default(DEFAULTS.namespaces),
        soap: z.union([version.transform((v) => ({ version: v, action: undefined, wrap: true, unwrap: true })), soapObject]).optional(),
        contentType: z.string().regex(/^[a-z]+\/[a-z0-9.+-]*xml$/i, { error: `must be an XML media type without parameters, e.g. 'text/xml'` }).optional(),
        limit: byteSize(z).refine((bytes) => bytes > 0, { error: 'must be more than 0 bytes' }).default(DEFAULTS.limit),
        maxDepth: z.number().int().min(1).max(1000, { error: 'must be at most 1000' }).default(DEFAULTS.maxDepth),
        onError: errorMode(z).default('respond'),
      },
      { error: `must be an object like { root: 'order', arrays: ['order.lines.line'] } or { soap: { version: '1.1', action: 'urn:…' } }.` },
    )
    .refine((config) => !config.textKey.startsWith(config.attributePrefix), { error: 'cannot start with "attributePrefix": text would read as an attribute', path: ['textKey'] })
    .refine((config) => !(config.soap && config.contentType), { error: 'is fixed by soap.version (text/xml for 1.1, application/soap+xml for 1.2): remove it', path: ['contentType'] });
});

type Config = ReturnType<ReturnType<typeof xmlBridgeSchema>['parse']>;

/**
 * @example
 * app.use('/legacy', xmlBridge({ root: 'order', arrays: ['lines.line'] }), proxy({ target: 'http://127.0.0.1:4002' }));
 * app.use('/soap', xmlBridge({ soap: { version: '1.1', action: 'urn:orders#GetOrder' }, namespace: 'urn:orders' }), proxy({ target }));
 */
export function xmlBridge(options: XmlBridgeOptions = {}, optionPrefix = ''): Middleware {
  const config = parseOptions(xmlBridgeSchema(), options, optionPrefix);
  const bridge = new Bridge(config);
  const { limit, onError } = config;
  const jsonClient = config.client === 'json';
  const accepts = jsonClient ? isJsonType : isXmlType;
  const expected = jsonClient ? 'application/json' : 'XML (application/xml, text/xml or a +xml type)';
  const upstreamAccept = jsonClient ? bridge.accept : 'application/json';
  const soapAction = jsonClient && config.soap?.version === '1.1' ? `"${config.soap.action ?? ''}"` : undefined;

  return function xmlBridgeMiddleware(req, res, next) {
    const context = getContext(req, res);
    const plan = planChanges(context);
    // The upstream is asked for its own format, whole and uncompressed: the answer is converted as one document.
    plan.setHeaders.accept = upstreamAccept;
    for (const name of ['accept-encoding', 'range', 'if-range', 'soapaction']) plan.removeHeaders.add(name);
    if (soapAction !== undefined) plan.setHeaders.soapaction = soapAction;
    const rewritten = plan.body !== undefined; // by a feature before this one (transformBody)
    if (!rewritten && req.headers['transfer-encoding'] === undefined && !(Number(req.headers['content-length'] ?? 0) > 0)) {
      addResponseFilter(req, bridge.responseFilter());
      return next();
    }
    // A body rewritten before us is described by the plan's Content-Type, or is UTF-8 JSON (transformBody's).
    const planType = rewritten ? plan.setHeaders['content-type'] : undefined;
    const media = parseMediaType(planType ?? req.headers['content-type']);
    const charset = rewritten && planType === undefined ? undefined : media.charset;
    if (!accepts(media.type)) {
      return respondOrNext(onError, req, res, next, new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: `This route takes ${expected} request bodies${media.type ? `, not ${media.type.slice(0, 100)}` : ' with a Content-Type'}.` }));
    }
    const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (!rewritten && encoding !== 'identity') {
      return respondOrNext(onError, req, res, next, new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: 'This route takes uncompressed request bodies (no Content-Encoding).' }));
    }
    const body = rewritten ? Promise.resolve(plan.body as Buffer) : readBody(req, limit);
    body.then(
      (bytes) => {
        try {
          if (bytes.length > limit) throw new GatewayError('ERR_BODY_TOO_LARGE', { detail: `The request body is larger than ${limit} bytes.` });
          if (bytes.length > 0) {
            plan.body = Buffer.from(jsonClient ? bridge.toXml(JSON.parse(decodeText(bytes, charset, false)) as unknown) : JSON.stringify(bridge.toJson(decodeText(bytes, charset, true), false) ?? null), 'utf8');
            plan.setHeaders['content-type'] = jsonClient ? bridge.xmlType : JSON_TYPE;
          }
          addResponseFilter(req, bridge.responseFilter());
        } catch (err) {
          return respondOrNext(onError, req, res, next, requestError(err, jsonClient));
        }
        next();
      },
      (err: unknown) => respondOrNext(onError, req, res, next, err),
    );
  };
}

/** What a conversion failure of the client's body answers: 415 for a charset we cannot read, otherwise 400. */
function requestError(err: unknown, jsonClient: boolean): unknown {
  if (err instanceof ConversionError) {
    return err.kind === 'unsupported'
      ? new GatewayError('ERR_UNSUPPORTED_MEDIA_TYPE', { detail: err.message, cause: err })
      : new GatewayError('ERR_BAD_REQUEST_BODY', { detail: err.message, cause: err });
  }
  if (err instanceof SyntaxError) return new GatewayError('ERR_BAD_REQUEST_BODY', { detail: `The request body is not valid ${jsonClient ? 'JSON' : 'XML'}.`, cause: err });
  return err;
}

/** What a conversion failure of the upstream's answer answers: always a 502, never the raw answer. */
function responseError(err: unknown, format: 'XML' | 'JSON'): GatewayError {
  if (err instanceof GatewayError) return err;
  const reason = err instanceof ConversionError ? ` ${err.message}` : '';
  return new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: `The upstream's ${format} answer could not be converted.${reason}`, cause: err });
}

/** The conversions of one bridge, with everything that depends only on its options worked out once. */
class Bridge {
  readonly xmlType: string;
  readonly accept: string;
  private readonly codec: XmlCodec;
  private readonly soap: Config['soap'];
  private readonly envelope: { name: string; body: string; ns: string } | undefined;

  constructor(private readonly config: Config) {
    const soap = config.soap;
    this.soap = soap;
    if (soap) {
      this.envelope = { name: 'soap:Envelope', body: 'soap:Body', ns: ENVELOPE_NS[soap.version] };
      const action = soap.action ? `; action="${soap.action}"` : '';
      this.xmlType = soap.version === '1.1' ? 'text/xml; charset=utf-8' : `application/soap+xml; charset=utf-8${action}`;
      this.accept = soap.version === '1.1' ? 'text/xml' : 'application/soap+xml';
    } else {
      const type = (config.contentType ?? DEFAULTS.contentType).toLowerCase();
      this.xmlType = `${type}; charset=utf-8`;
      this.accept = [...new Set([type, 'application/xml', 'text/xml'])].join(', ');
    }
    this.codec = new XmlCodec({
      attributePrefix: config.attributePrefix,
      textKey: config.textKey,
      arrays: config.arrays,
      skipSegments: (soap?.unwrap ? 2 : 0) + (config.root ? 1 : 0),
      parseValues: config.parseValues,
      namespaces: config.namespaces,
      maxDepth: config.maxDepth,
    });
  }

  /** A JSON value as the XML document the other side gets. */
  toXml(value: unknown): string {
    const { root, attributePrefix } = this.config;
    const given = root ? { [root]: value } : value;
    if (!isObject(given)) throw new ConversionError('malformed', `The JSON must be an object whose member is the XML element${root ? '' : ` (e.g. { "order": { … } }), or the route must set "root"`}.`);
    const isElement = (key: string) => !key.startsWith(attributePrefix) && key !== this.config.textKey;
    // A new object of own properties (fromEntries never assigns, so a "__proto__" key stays a key the codec refuses).
    const content = Object.fromEntries(Object.entries(given).map(([key, member]) => [key, isElement(key) ? this.withNamespace(member) : member]));
    const elements = Object.keys(content).filter(isElement);
    if (this.envelope && this.soap?.wrap) {
      return this.codec.build({ [this.envelope.name]: { [`${attributePrefix}xmlns:soap`]: this.envelope.ns, [this.envelope.body]: content } });
    }
    if (elements.length !== 1 || Object.keys(content).length !== 1 || Array.isArray(content[elements[0]])) {
      throw new ConversionError('malformed', `The JSON must be an object with exactly one member, the XML document element (e.g. { "order": { … } })${root ? '' : ', or the route must set "root"'}.`);
    }
    return this.codec.build(content);
  }

  /** An XML document as the JSON value the other side gets. A SOAP Fault in an upstream's answer throws ERR_UPSTREAM_FAULT. */
  toJson(text: string, fromUpstream: boolean): unknown {
    const document = this.codec.parse(text);
    let content: unknown = document;
    if (this.soap) {
      const envelope = member(document, 'Envelope', this.config);
      const body = member(envelope, 'Body', this.config);
      if (body === undefined) {
        if (this.soap.unwrap) throw new ConversionError('malformed', 'The XML is not a SOAP Envelope with a Body.');
      } else if (fromUpstream) {
        const fault = member(body, 'Fault', this.config);
        if (fault !== undefined) throw this.faultError(fault);
      }
      if (!this.soap.unwrap) return document;
      content = isObject(body) ? Object.fromEntries(Object.entries(body).filter(([key]) => !key.startsWith(this.config.attributePrefix) && key !== this.config.textKey)) : {};
    }
    if (!this.config.root) return content;
    const values = Object.values(content as Record<string, unknown>);
    return values.length === 1 ? values[0] : content;
  }

  /** The filter converting the upstream's answer for the client; one per request (it keeps what its header part saw). */
  responseFilter(): ResponseFilter {
    const jsonClient = this.config.client === 'json';
    let convert = false;
    let encoded = false;
    let charset: string | undefined;
    const soap = this.soap;
    return {
      // A SOAP Fault travels as HTTP 500 (1.1; 1.2 uses 500 for receiver faults): the service is up, it said no.
      expected: (answer) => soap !== undefined && jsonClient && answer.status === 500 && isXmlType(parseMediaType(answer.headers['content-type']).type),
      headers: (answer) => {
        const media = parseMediaType(answer.headers['content-type']);
        // Not the upstream's format (an HTML error page, a JSON 404 from an XML service): untouched, and streamed (`when`).
        if (!(jsonClient ? isXmlType(media.type) : isJsonType(media.type))) return;
        convert = true;
        charset = media.charset;
        encoded = String(answer.headers['content-encoding'] ?? 'identity').toLowerCase() !== 'identity';
        answer.headers['content-type'] = jsonClient ? JSON_TYPE : this.xmlType;
        delete answer.headers['content-length'];
        delete answer.headers['content-encoding'];
        weakenEtag(answer.headers);
      },
      buffer: {
        maxBytes: this.config.limit,
        oversize: 'fail',
        when: () => convert,
        body: (bytes, answer: FilteredResponse) => {
          if (encoded) throw new GatewayError('ERR_UPSTREAM_BAD_RESPONSE', { detail: 'The upstream sent a compressed answer the bridge cannot convert.' });
          if (bytes.length === 0) {
            delete answer.headers['content-type'];
            return bytes;
          }
          try {
            if (jsonClient) return Buffer.from(JSON.stringify(this.toJson(decodeText(bytes, charset, true), true) ?? null), 'utf8');
            let value: unknown;
            try {
              value = JSON.parse(decodeText(bytes, charset, false));
            } catch (err) {
              throw err instanceof SyntaxError ? new ConversionError('malformed', 'The body is not valid JSON.') : err;
            }
            return Buffer.from(this.toXml(value), 'utf8');
          } catch (err) {
            throw responseError(err, jsonClient ? 'XML' : 'JSON');
          }
        },
      },
    };
  }

  private withNamespace(element: unknown): unknown {
    const { namespace, attributePrefix, textKey } = this.config;
    if (!namespace) return element;
    const xmlns = `${attributePrefix}xmlns`;
    if (Array.isArray(element)) return element.map((item) => this.withNamespace(item));
    if (isObject(element)) return Object.hasOwn(element, xmlns) ? element : { [xmlns]: namespace, ...element };
    return element === null || element === undefined || element === '' ? { [xmlns]: namespace } : { [xmlns]: namespace, [textKey]: element };
  }

  /** SOAP 1.1 `faultcode`/`faultstring`, or SOAP 1.2 `Code/Value` and `Reason/Text`, as problem extension members. */
  private faultError(fault: unknown): GatewayError {
    const config = this.config;
    const code = text(member(fault, 'faultcode', config) ?? member(member(fault, 'Code', config), 'Value', config), config.textKey);
    const reason = text(member(fault, 'faultstring', config) ?? member(member(fault, 'Reason', config), 'Text', config), config.textKey);
    return new GatewayError('ERR_UPSTREAM_FAULT', {
      detail: 'The upstream service answered with a SOAP Fault.',
      extensions: { faultcode: code?.slice(0, MAX_FAULT_TEXT) ?? null, faultstring: reason?.slice(0, MAX_FAULT_TEXT) ?? null },
    });
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The child element with this local name (any prefix), the first when repeated. */
function member(parent: unknown, name: string, config: Config): unknown {
  if (!isObject(parent)) return undefined;
  for (const [key, value] of Object.entries(parent)) {
    if (key.startsWith(config.attributePrefix) || key === config.textKey || localName(key) !== name) continue;
    return Array.isArray(value) ? value[0] : value;
  }
  return undefined;
}

/** The text of an element as parsed: a plain value, or the text key of one with attributes. */
function text(value: unknown, textKey: string): string | undefined {
  if (Array.isArray(value)) return text(value[0], textKey);
  if (isObject(value)) return text(value[textKey], textKey);
  if (value === undefined || value === null) return undefined;
  return String(value);
}

/** The converted answer is not byte-equal to the upstream's: a strong ETag becomes weak (as compression does). */
function weakenEtag(headers: IncomingHttpHeaders): void {
  const etag = headers.etag;
  if (typeof etag === 'string' && etag.startsWith('"')) headers.etag = `W/${etag}`;
}

/** The route option `xml`: in the "shape the request" phase, after auth and the rate limit, so refused requests cost no parsing. */
export const xmlFeature: FeatureDescriptor = {
  option: 'xml',
  phase: 'shapeRequest',
  schemas: defineSchema(() => ({ option: xmlBridgeSchema() })),
  upgrade: { apply: false, reason: 'A WebSocket handshake has no body to convert and its frames are not XML or JSON documents: the bridge applies to HTTP requests and answers.' },
  build: (value, scope) => {
    if (value === undefined || value === null) throw new ConfigError(`"${scope.optionPrefix}xml" must be an object like { root: 'order' } or { soap: '1.1' }.`);
    return { handler: xmlBridge(withGatewayErrors(value as XmlBridgeOptions, `${scope.optionPrefix}xml`), `${scope.optionPrefix}xml.`) };
  },
};
