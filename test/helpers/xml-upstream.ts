/**
 * A real legacy service speaking XML and SOAP, for the XML bridge suites: a node:http app (via startUpstream, so
 * it records what it received) that answers fixed documents, echoes XML, and plays a SOAP 1.1 and 1.2 service with
 * faults. It never parses XML itself, so the bridge is checked against documents written by hand.
 */
import type http from 'node:http';
import { startUpstream, Upstream } from './upstream';

export const SOAP11_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
export const SOAP12_NS = 'http://www.w3.org/2003/05/soap-envelope';

/** The order document of GET /orders/7: attributes, a namespace, one line (an array of one), an empty element, numbers. */
export const ORDER_XML = `<?xml version="1.0" encoding="UTF-8"?>
<o:order xmlns:o="urn:shop:orders" id="007" status="open">
  <o:customer>Zoë Ödegård</o:customer>
  <o:lines>
    <o:line sku="A-1"><o:qty>2</o:qty><o:price currency="EUR">12.50</o:price></o:line>
  </o:lines>
  <o:note/>
  <o:gift>false</o:gift>
  <o:big>12345678901234567890</o:big>
  <o:text>a &lt;b&gt; &amp; c &#233;</o:text>
</o:order>`;

/** The same kind of document in ISO-8859-1, declared in the XML declaration (and, on /latin1, in Content-Type too). */
export const LATIN1_XML = Buffer.from('<?xml version="1.0" encoding="ISO-8859-1"?><city><name>Zürich</name><note>crème brûlée</note></city>', 'latin1');

/** The classic entity-expansion bomb. */
export const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>`;

/** An external entity (XXE) pointing at `url`: a parser that resolved it would fetch it. */
export const xxe = (url: string) => `<?xml version="1.0"?><!DOCTYPE order [<!ENTITY secret SYSTEM "${url}">]><order><id>&secret;</id></order>`;

/** A SOAP 1.1 Envelope around `body`. */
export const soap11 = (body: string) => `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="${SOAP11_NS}"><soap:Body>${body}</soap:Body></soap:Envelope>`;
/** A SOAP 1.2 Envelope around `body`. */
export const soap12 = (body: string) => `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="${SOAP12_NS}"><env:Body>${body}</env:Body></env:Envelope>`;

const xml = (res: http.ServerResponse, status: number, body: string | Buffer, type = 'application/xml; charset=utf-8', extra: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), ...extra });
  res.end(body);
};

/**
 * Routes:
 * - `POST /echo`: answers the XML it received, with the Content-Type it received.
 * - `GET /orders/7`: ORDER_XML (with a strong ETag). `GET /latin1`, `/latin1-declared`: LATIN1_XML, charset in the header or only in the declaration.
 * - `GET /malformed`, `/billion`, `/big` (2 MB), `/big-text` (100 KB of text/plain), `/html-error` (a 500 text/html page), `/json-404`, `/empty` (204), `/gzip` (a compressed XML answer).
 * - `POST /soap11`: SOAP 1.1 by SOAPAction: `"urn:orders#GetOrder"` answers GetOrderResponse, `"urn:orders#Fail"` a 500 Fault,
 *   anything else a Client fault. `POST /soap12`: the same by the Content-Type's `action`, with SOAP 1.2 faults.
 * - `POST /not-soap`: a plain XML document where an Envelope was expected.
 */
export function startXmlUpstream(): Promise<Upstream> {
  return startUpstream({
    name: 'xml',
    handler: (req, res, body) => {
      const path = (req.url ?? '/').split('?')[0];
      const action = String(req.headers.soapaction ?? '');
      const action12 = /;\s*action="([^"]*)"/.exec(String(req.headers['content-type'] ?? ''))?.[1];
      switch (path) {
        case '/echo':
          return xml(res, 200, body, String(req.headers['content-type'] ?? 'application/xml'));
        case '/orders/7':
          return xml(res, 200, ORDER_XML, 'application/xml; charset=utf-8', { etag: '"v7"' });
        case '/latin1':
          return xml(res, 200, LATIN1_XML, 'text/xml; charset=ISO-8859-1');
        case '/latin1-declared':
          return xml(res, 200, LATIN1_XML, 'application/xml');
        case '/malformed':
          return xml(res, 200, '<order><id>7</order>');
        case '/billion':
          return xml(res, 200, BILLION_LAUGHS);
        case '/big':
          return xml(res, 200, `<items>${'<item>0123456789abcdef</item>'.repeat(80_000)}</items>`);
        case '/big-text':
          return xml(res, 200, 'x'.repeat(100_000), 'text/plain; charset=utf-8');
        case '/html-error':
          return xml(res, 500, '<html><body><h1>Internal Server Error</h1></body></html>', 'text/html; charset=utf-8');
        case '/json-404':
          return xml(res, 404, JSON.stringify({ error: 'no such order' }), 'application/json');
        case '/empty':
          res.writeHead(204);
          return res.end();
        case '/gzip':
          return xml(res, 200, Buffer.from([0x1f, 0x8b, 0x08, 0x00]), 'application/xml', { 'content-encoding': 'gzip' });
        case '/soap11':
          if (action === '"urn:orders#GetOrder"') {
            return xml(res, 200, soap11(`<GetOrderResponse xmlns="urn:orders"><order id="7"><status>shipped</status><line><sku>A-1</sku></line></order></GetOrderResponse>`), 'text/xml; charset=utf-8');
          }
          if (action === '"urn:orders#Fail"') {
            return xml(res, 500, soap11('<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Order database is offline</faultstring><detail><code>DB-17</code></detail></soap:Fault>'), 'text/xml; charset=utf-8');
          }
          return xml(res, 500, soap11(`<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Unknown SOAPAction ${action.replace(/[<&]/g, '')}</faultstring></soap:Fault>`), 'text/xml; charset=utf-8');
        case '/soap12':
          if (action12 === 'urn:orders#GetOrder') {
            return xml(res, 200, soap12('<m:GetOrderResponse xmlns:m="urn:orders"><m:status>shipped</m:status></m:GetOrderResponse>'), 'application/soap+xml; charset=utf-8');
          }
          return xml(
            res,
            500,
            soap12('<env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text xml:lang="en">No such order</env:Text></env:Reason></env:Fault>'),
            'application/soap+xml; charset=utf-8',
          );
        case '/not-soap':
          return xml(res, 200, '<order><id>7</id></order>', 'text/xml');
        default:
          return xml(res, 404, '<error>not found</error>');
      }
    },
  });
}
