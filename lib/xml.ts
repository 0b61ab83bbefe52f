/**
 * XML <-> JSON for the XML bridge, on fast-xml-parser, set up so that hostile documents cost nothing: a DOCTYPE or
 * entity declaration is refused before parsing (so no entity is ever expanded or fetched), names that could reach
 * an object's prototype are refused, nesting is bounded, and only well-formed documents are parsed. Element and
 * attribute names coming from JSON are checked before they are written, so a JSON key cannot inject markup.
 */
import type { X2jOptions, XMLBuilder as Builder, XMLParser as Parser } from 'fast-xml-parser';

/** Why a body could not be converted: `malformed` (the client's 400, an upstream's 502) or an `unsupported` charset (415). */
export class ConversionError extends Error {
  constructor(
    readonly kind: 'malformed' | 'unsupported',
    message: string,
  ) {
    super(message);
    this.name = 'ConversionError';
  }
}

export interface XmlCodecOptions {
  /** Prefix of attribute keys in JSON (`{ "@id": "7" }`). */
  attributePrefix: string;
  /** Key of an element's text when it also has attributes or children (`{ "@currency": "EUR", "#text": "12" }`). */
  textKey: string;
  /** Element paths (dotted, `*` for any one element) that are always arrays, relative to the JSON the client sees. */
  arrays: readonly string[];
  /** Leading elements of the document the JSON leaves out (SOAP Envelope and Body, the root), for `arrays` paths. */
  skipSegments: number;
  /** Turn numbers and booleans into JSON numbers and booleans; otherwise every value stays the string written. */
  parseValues: boolean;
  /** Keep namespace prefixes and `xmlns` attributes, or strip them. */
  namespaces: 'keep' | 'strip';
  /** Deepest nesting accepted, in elements (XML) or objects and arrays (JSON). */
  maxDepth: number;
}

/** Names that would reach an object's prototype as keys; refused as element or attribute names either way. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);
/** A DOCTYPE or entity declaration anywhere: refused before parsing (XML is case-sensitive; this check is not). */
const DECLARATION = /<!\s*(?:DOCTYPE|ENTITY)/i;
/** An XML name, optionally prefixed (`m:GetOrder`). */
const XML_NAME = /^[\p{L}_][\p{L}\p{N}\p{M}._-]*(?::[\p{L}_][\p{L}\p{N}\p{M}._-]*)?$/u;
/** Characters XML 1.0 cannot carry, even escaped (with the `u` flag, a surrogate range matches lone surrogates only). */
// eslint-disable-next-line no-control-regex -- control characters are exactly what this looks for
const NOT_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF\uD800-\uDFFF]/u;

/** The local part of a possibly prefixed name: `soap:Body` → `Body`. */
export function localName(name: string): string {
  const colon = name.indexOf(':');
  return colon === -1 ? name : name.slice(colon + 1);
}

/** True for a valid XML element or attribute name (with an optional prefix). */
export function isXmlName(name: string): boolean {
  return XML_NAME.test(name);
}

/** Converts between XML text and JSON values with one set of options, built once. */
export class XmlCodec {
  private readonly parser: Parser;
  private readonly builder: Builder;
  private readonly options: XmlCodecOptions;

  constructor(options: XmlCodecOptions) {
    this.options = options;
    // Loaded when a bridge is built, not when frontdoor is imported.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fxp = require('fast-xml-parser') as typeof import('fast-xml-parser');
    const arrays = options.arrays.map((path) => path.split('.'));
    const { attributePrefix, skipSegments } = options;
    const refuseReserved = (name: string, what: string) => {
      if (RESERVED.has(localName(name))) throw new ConversionError('malformed', `The ${what} name "${name}" is not accepted.`);
    };
    const parserOptions: X2jOptions = {
      ignoreAttributes: false,
      attributeNamePrefix: attributePrefix,
      textNodeName: options.textKey,
      removeNSPrefix: options.namespaces === 'strip',
      parseTagValue: options.parseValues,
      parseAttributeValue: options.parseValues,
      // Numbers as JSON reads them: no hex, and "007" (an id, a postcode) stays a string. Too large for a double stays a string too.
      numberParseOptions: { hex: false, leadingZeros: false, eNotation: true },
      ignoreDeclaration: true,
      ignorePiTags: true,
      // The five XML entities and character references (&#233;), nothing else: an empty named map turns numeric
      // references on without adding HTML's names. Declared entities never get here (DECLARATION).
      processEntities: true,
      htmlEntities: {} as unknown as boolean,
      maxNestedTags: options.maxDepth,
      transformTagName: (name) => {
        refuseReserved(name, 'element');
        return name;
      },
      transformAttributeName: (name) => {
        refuseReserved(name.slice(attributePrefix.length), 'attribute');
        return name;
      },
      isArray: (_name, jpath, _leaf, isAttribute) => {
        if (isAttribute || arrays.length === 0) return false;
        const segments = String(jpath).split('.').slice(skipSegments);
        return arrays.some((path) => path.length === segments.length && path.every((part, i) => part === '*' || part === segments[i] || part === localName(segments[i])));
      },
    };
    this.parser = new fxp.XMLParser(parserOptions);
    this.validate = (text) => fxp.XMLValidator.validate(text);
    this.builder = new fxp.XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: attributePrefix, textNodeName: options.textKey, suppressBooleanAttributes: false, processEntities: true });
  }

  private readonly validate: (text: string) => true | { err: { msg: string; line: number; col: number } };

  /**
   * Parses an XML document to `{ rootName: content }`. Throws a ConversionError for a DOCTYPE or entity
   * declaration, a document that is not well-formed, a reserved name, or nesting deeper than `maxDepth`.
   */
  parse(text: string): Record<string, unknown> {
    if (DECLARATION.test(text)) throw new ConversionError('malformed', 'DOCTYPE and entity declarations are not accepted.');
    const valid = this.validate(text);
    if (valid !== true) throw new ConversionError('malformed', `The XML is not well-formed: ${valid.err.msg} (line ${valid.err.line}, column ${valid.err.col ?? '?'}).`);
    try {
      return this.parser.parse(text) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof ConversionError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (message.includes('nested')) throw new ConversionError('malformed', `The XML is nested deeper than ${this.options.maxDepth} elements.`);
      throw new ConversionError('malformed', 'The XML could not be parsed.');
    }
  }

  /**
   * Writes `{ rootName: content }` as an XML document (UTF-8, with a declaration). Throws a ConversionError
   * for a key that is not an XML name, a reserved name, nested arrays, an object as an attribute value, a
   * character XML cannot carry, or nesting deeper than `maxDepth`.
   */
  build(document: Record<string, unknown>): string {
    this.check(document);
    return `<?xml version="1.0" encoding="UTF-8"?>${this.builder.build(document) as string}`;
  }

  /** Checks a JSON value before it is written as XML, without recursion (depth is bounded by `maxDepth`). */
  private check(document: Record<string, unknown>): void {
    const { attributePrefix, textKey, maxDepth } = this.options;
    const stack: Array<[unknown, number]> = [[document, 0]];
    while (stack.length > 0) {
      const [value, depth] = stack.pop() as [unknown, number];
      if (depth > maxDepth) throw new ConversionError('malformed', `The JSON is nested deeper than ${maxDepth} levels.`);
      if (typeof value === 'string') {
        if (NOT_XML_CHAR.test(value)) throw new ConversionError('malformed', 'The JSON contains a character XML cannot carry (a control character or a lone surrogate).');
        continue;
      }
      if (value === null || typeof value !== 'object') continue;
      if (Array.isArray(value)) {
        for (const item of value) {
          if (Array.isArray(item)) throw new ConversionError('malformed', 'An array inside an array has no XML form: each item needs an element name.');
          stack.push([item, depth + 1]);
        }
        continue;
      }
      for (const [key, member] of Object.entries(value)) {
        const attribute = key.startsWith(attributePrefix);
        const name = attribute ? key.slice(attributePrefix.length) : key;
        if (key === textKey) {
          if (member !== null && typeof member === 'object') throw new ConversionError('malformed', `"${textKey}" must be text, a number or a boolean.`);
        } else if (!isXmlName(name)) {
          throw new ConversionError('malformed', `The key ${JSON.stringify(key.slice(0, 100))} is not a valid XML ${attribute ? 'attribute' : 'element'} name.`);
        } else if (RESERVED.has(localName(name))) {
          throw new ConversionError('malformed', `The ${attribute ? 'attribute' : 'element'} name "${name}" is not accepted.`);
        } else if (attribute && member !== null && typeof member === 'object') {
          throw new ConversionError('malformed', `The attribute "${name}" must be text, a number or a boolean.`);
        }
        stack.push([member, depth + 1]);
      }
    }
  }
}

/** A Content-Type header, parsed: the media type in lower case, and the charset when given. */
export interface MediaType {
  type: string;
  charset: string | undefined;
}

export function parseMediaType(header: string | string[] | undefined): MediaType {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return { type: '', charset: undefined };
  const [type, ...params] = value.split(';');
  let charset: string | undefined;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq !== -1 && param.slice(0, eq).trim().toLowerCase() === 'charset') charset = param.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
  }
  return { type: type.trim().toLowerCase(), charset };
}

/** application/xml, text/xml and any `+xml` type (application/soap+xml). */
export function isXmlType(type: string): boolean {
  return type === 'application/xml' || type === 'text/xml' || (type.endsWith('+xml') && type.includes('/'));
}

/** application/json and any `+json` type (application/problem+json). */
export function isJsonType(type: string): boolean {
  return type === 'application/json' || (type.endsWith('+json') && type.includes('/'));
}

const XML_DECLARED_ENCODING = /^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']/;

/**
 * Decodes a body to text: the Content-Type's charset first (RFC 7303), then a byte order mark, then (for XML) the
 * declaration's `encoding`, else UTF-8. Bytes that are not valid in that encoding are `malformed`; an encoding
 * this Node cannot decode is `unsupported`.
 */
export function decodeText(bytes: Buffer, charset: string | undefined, xml: boolean): string {
  let label = charset;
  if (!label) {
    if (bytes[0] === 0xfe && bytes[1] === 0xff) label = 'utf-16be';
    else if (bytes[0] === 0xff && bytes[1] === 0xfe) label = 'utf-16le';
    else if (xml) label = XML_DECLARED_ENCODING.exec(bytes.subarray(0, 200).toString('latin1'))?.[1];
  }
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder(label ?? 'utf-8', { fatal: true });
  } catch {
    throw new ConversionError('unsupported', `The charset ${JSON.stringify(String(label).slice(0, 40))} is not supported.`);
  }
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ConversionError('malformed', `The body is not valid ${decoder.encoding}.`);
  }
}
