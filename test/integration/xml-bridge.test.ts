/**
 * xmlBridge(): a JSON client in front of a real XML/SOAP service and an XML client in front of a real JSON service,
 * alone in front of proxy() and as the gateway route option `xml`. Round trips keep attributes, arrays of one,
 * namespaces, empty elements, strings that look like numbers and non-ASCII text (UTF-8 and a declared ISO-8859-1);
 * hostile bodies (entity bombs, external entities, prototype keys, deep nesting, markup in JSON keys) are refused
 * fast with a problem, never forwarded, and never slow anyone else down.
 */
import http from 'node:http';
import express from 'express';
import { ConfigError, gateway, proxy } from '../../index';
import type { Gateway, ProxyMiddleware } from '../../index';
import { xmlBridge } from '../../middleware/xml-bridge';
import { listen, rawRequest, RunningApp } from '../helpers/app';
import { expectProblem } from '../helpers/problem';
import { startUpstream, Upstream } from '../helpers/upstream';
import { BILLION_LAUGHS, LATIN1_XML, startXmlUpstream, xxe } from '../helpers/xml-upstream';

type Json = Record<string, unknown>;

/** POSTs a body with a content type; returns status, headers and the body as text. */
const post = (port: number, path: string, type: string | undefined, body: string | Buffer, headers: Record<string, string> = {}) =>
  rawRequest(port, { method: 'POST', path, headers: { ...(type ? { 'content-type': type } : {}), 'content-length': String(Buffer.byteLength(body)), ...headers }, body });

/** A chunked POST (no Content-Length), for sizes that are only known while streaming. */
function postChunked(port: number, path: string, type: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': type, 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

const last = (upstream: Upstream) => upstream.requests[upstream.requests.length - 1];

describe('xmlBridge()', () => {
  let service: Upstream; // XML and SOAP
  let jsonService: Upstream;
  let canary: Upstream; // must never be called (external entities)
  let ejected: Upstream; // a second XML service, for the route whose faults eject it
  let app: RunningApp;
  let gw: Gateway;
  const proxies: ProxyMiddleware[] = [];

  beforeAll(async () => {
    service = await startXmlUpstream();
    ejected = await startXmlUpstream();
    canary = await startUpstream({ name: 'canary' });
    jsonService = await startUpstream({
      name: 'json',
      handler: (req, res, body) => {
        if (req.url === '/missing') {
          res.writeHead(404, { 'content-type': 'text/plain' });
          return res.end('no');
        }
        const answer = JSON.stringify({ received: body.length ? JSON.parse(body.toString('utf8')) : null, contentType: req.headers['content-type'], status: 'accepted', count: 3 });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(answer)) });
        res.end(answer);
      },
    });
    const to = (target: string) => {
      const middleware = proxy({ target, stripPath: true });
      proxies.push(middleware);
      return middleware;
    };
    gw = gateway({
      routes: [
        { path: '/gw/soap', upstream: service.url, rewrite: { '^/gw/soap': '/soap11' }, xml: { soap: { version: '1.1', action: 'urn:orders#GetOrder' }, root: 'GetOrder', namespace: 'urn:orders', arrays: ['order.line'] } },
        { path: '/gw/fail', upstream: { target: service.url, health: { passive: false } }, rewrite: { '^/gw/fail': '/soap11' }, xml: { soap: { version: '1.1', action: 'urn:orders#Fail' }, root: 'GetOrder' } },
        { path: '/gw/soap12', upstream: service.url, rewrite: { '^/gw/soap12': '/soap12' }, xml: { soap: { version: '1.2', action: 'urn:orders#GetOrder' }, namespaces: 'strip' } },
        { path: '/gw/soap12-fault', upstream: service.url, rewrite: { '^/gw/soap12-fault': '/soap12' }, xml: { soap: '1.2' } },
        { path: '/gw/not-soap', upstream: service.url, rewrite: { '^/gw/not-soap': '/not-soap' }, xml: { soap: '1.1' } },
        { path: '/gw/fault-ejects', upstream: ejected.url, rewrite: { '^/gw/fault-ejects': '/soap11' }, xml: { soap: { version: '1.1', action: 'urn:orders#Fail' }, root: 'GetOrder' } },
        { path: '/gw/legacy', upstream: service.url, rewrite: { '^/gw/legacy': '' }, xml: { limit: '4kb' } },
      ],
    });
    const server = express();
    // A body parser in front of the gateway and of one bridge: the bridge must take the body it already read.
    server.use('/gw', express.json());
    server.use(gw);
    server.use('/parsed', express.json(), xmlBridge({ root: 'order' }), to(service.url));
    server.use('/legacy', xmlBridge({ arrays: ['o:order.o:lines.o:line', 'order.lines.line'] }), to(service.url));
    server.use('/stripped', xmlBridge({ namespaces: 'strip', root: 'order', arrays: ['lines.line'] }), to(service.url));
    server.use('/typed', xmlBridge({ namespaces: 'strip', parseValues: true }), to(service.url));
    server.use('/small', xmlBridge({ limit: '1kb' }), to(service.url));
    server.use('/xml-client', xmlBridge({ client: 'xml', root: 'reply', arrays: ['line'] }), to(jsonService.url));
    server.use('/shallow', xmlBridge({ client: 'xml', root: 'reply', maxDepth: 20 }), to(jsonService.url));
    app = await listen(server);
  });
  afterAll(async () => {
    await app.close();
    await gw.close();
    for (const middleware of proxies) await middleware.close();
    await Promise.all([service.close(), ejected.close(), jsonService.close(), canary.close()]);
  });

  describe('a JSON client in front of an XML service', () => {
    it('sends the JSON body as XML and the XML answer back as JSON, keeping attributes, text, empty elements, arrays of one and strings that look like numbers', async () => {
      const order = { order: { '@id': '007', customer: 'Zoë "Z" <Ödegård> & Co', lines: { line: [{ '@sku': 'A-1', qty: 2 }] }, note: '', price: { '@currency': 'EUR', '#text': '12.50' }, paid: false } };
      const res = await post(app.port, '/legacy/echo', 'application/json', JSON.stringify(order));
      expect(res.status).toBe(200);

      const sent = last(service);
      expect(sent.headers['content-type']).toBe('application/xml; charset=utf-8');
      expect(Number(sent.headers['content-length'])).toBe(sent.body.length);
      expect(sent.headers.accept).toContain('application/xml');
      const xml = sent.body.toString('utf8');
      expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?><order id="007">/);
      expect(xml).toContain('<customer>Zoë &quot;Z&quot; &lt;Ödegård&gt; &amp; Co</customer>');
      expect(xml).toContain('<line sku="A-1"><qty>2</qty></line>');

      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
      // Values come back as written: the number 2 became the text "2", and stays a string without parseValues.
      expect(JSON.parse(res.body)).toEqual({ order: { '@id': '007', customer: 'Zoë "Z" <Ödegård> & Co', lines: { line: [{ '@sku': 'A-1', qty: '2' }] }, note: '', price: { '@currency': 'EUR', '#text': '12.50' }, paid: 'false' } });
    });

    it('keeps namespaces by default, with references and entities decoded', async () => {
      const res = await rawRequest(app.port, { path: '/legacy/orders/7' });
      expect(res.status).toBe(200);
      const order = JSON.parse(res.body)['o:order'];
      expect(order['@xmlns:o']).toBe('urn:shop:orders');
      expect(order['@id']).toBe('007');
      expect(order['o:customer']).toBe('Zoë Ödegård');
      expect(order['o:lines']['o:line']).toEqual([{ '@sku': 'A-1', 'o:qty': '2', 'o:price': { '@currency': 'EUR', '#text': '12.50' } }]);
      expect(order['o:note']).toBe('');
      expect(order['o:text']).toBe('a <b> & c é');
      // The JSON is not the upstream's bytes: its strong ETag is passed on as a weak one.
      expect(res.headers.etag).toBe('W/"v7"');
    });

    it('strips namespaces and unwraps the root on request, with stable arrays relative to what the client sees', async () => {
      const res = await rawRequest(app.port, { path: '/stripped/orders/7' });
      const order = JSON.parse(res.body);
      expect(order['@xmlns:o']).toBeUndefined();
      expect(order).toMatchObject({ '@id': '007', customer: 'Zoë Ödegård', note: '', gift: 'false', big: '12345678901234567890' });
      expect(order.lines.line).toHaveLength(1);
    });

    it('turns numbers and booleans into JSON values only with parseValues, keeping leading zeros and huge numbers as text', async () => {
      const order = JSON.parse((await rawRequest(app.port, { path: '/typed/orders/7' })).body).order;
      expect(order['@id']).toBe('007');
      expect(order.lines.line.qty).toBe(2);
      expect(order.lines.line.price['#text']).toBe(12.5);
      expect(order.gift).toBe(false);
      expect(order.big).toBe('12345678901234567890');
    });

    it('decodes an ISO-8859-1 answer, declared in the Content-Type or only in the XML declaration', async () => {
      for (const path of ['/legacy/latin1', '/legacy/latin1-declared']) {
        const res = await rawRequest(app.port, { path });
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body)).toEqual({ city: { name: 'Zürich', note: 'crème brûlée' } });
      }
    });

    it('takes a body that express.json() already read, alone and in a gateway route', async () => {
      const alone = await post(app.port, '/parsed/echo', 'application/json', JSON.stringify({ id: 7, items: ['a', 'b'] }));
      expect(alone.status).toBe(200);
      expect(last(service).body.toString('utf8')).toContain('<order><id>7</id><items>a</items><items>b</items></order>');
      expect(JSON.parse(alone.body)).toEqual({ id: '7', items: ['a', 'b'] });

      const routed = await post(app.port, '/gw/legacy/echo', 'application/json', JSON.stringify({ note: { '@lang': 'fr', '#text': 'déjà' } }));
      expect(routed.status).toBe(200);
      expect(JSON.parse(routed.body)).toEqual({ note: { '@lang': 'fr', '#text': 'déjà' } });
    });

    it('passes answers that are not XML through untouched: an HTML error page, a JSON 404, a 204', async () => {
      const html = await rawRequest(app.port, { path: '/legacy/html-error' });
      expect(html.status).toBe(500);
      expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(html.body).toContain('<h1>Internal Server Error</h1>');
      const json = await rawRequest(app.port, { path: '/legacy/json-404' });
      expect(json.status).toBe(404);
      expect(JSON.parse(json.body)).toEqual({ error: 'no such order' });
      expect((await rawRequest(app.port, { path: '/legacy/empty' })).status).toBe(204);
      // Past the route's 4 KB limit, an answer that is not XML still goes through whole: it is streamed, never buffered.
      const large = await rawRequest(app.port, { path: '/gw/legacy/big-text' });
      expect(large.status).toBe(200);
      expect(large.body).toHaveLength(100_000);
    });

    it('answers 502 for malformed XML, an entity bomb, a compressed or an oversized answer from the upstream', async () => {
      const malformed = expectProblem(await rawRequest(app.port, { path: '/legacy/malformed' }), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
      expect(malformed.detail).toMatch(/not well-formed/);
      const started = Date.now();
      const bomb = expectProblem(await rawRequest(app.port, { path: '/legacy/billion' }), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
      expect(bomb.detail).toMatch(/DOCTYPE/);
      expect(Date.now() - started).toBeLessThan(1000);
      expectProblem(await rawRequest(app.port, { path: '/legacy/gzip' }), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
      expectProblem(await rawRequest(app.port, { path: '/gw/legacy/big' }), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
    });

    it('answers 415 for a body that is not JSON, or compressed, and forwards nothing', async () => {
      const before = service.requests.length;
      expectProblem(await post(app.port, '/legacy/echo', 'text/plain', 'hello'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post(app.port, '/legacy/echo', undefined, '{"a":1}'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post(app.port, '/legacy/echo', 'application/xml', '<a/>'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', '{"a":1}', { 'content-encoding': 'gzip' }), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json; charset=x-no-such-charset', '{"a":1}'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expect(service.requests.length).toBe(before);
    });

    it('answers 400 for JSON that has no XML form, and never writes a JSON key as markup', async () => {
      const before = service.requests.length;
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', '{"order":'), 400, 'ERR_BAD_REQUEST_BODY');
      const injected = expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify({ order: { 'x><admin>true</admin><y': 1 } })), 400, 'ERR_BAD_REQUEST_BODY');
      expect(injected.detail).toMatch(/not a valid XML element name/);
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify({ order: { '@a b': 1 } })), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify({ a: 1, b: 2 })), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify([1, 2])), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify({ a: [[1]] })), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', JSON.stringify({ a: 'bell \u0007' })), 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(await post(app.port, '/legacy/echo', 'application/json', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])), 400, 'ERR_BAD_REQUEST_BODY');
      expect(service.requests.length).toBe(before);
    });

    it('answers 413 past the limit, declared or streamed, before anything reaches the upstream', async () => {
      const before = service.requests.length;
      const big = JSON.stringify({ a: 'x'.repeat(2000) });
      expectProblem(await post(app.port, '/small/echo', 'application/json', big), 413, 'ERR_BODY_TOO_LARGE');
      const streamed = await postChunked(app.port, '/small/echo', 'application/json', [Buffer.from('{"a":"'), Buffer.alloc(1500, 'x'), Buffer.from('"}')]);
      expect(streamed.status).toBe(413);
      expect(JSON.parse(streamed.body).code).toBe('ERR_BODY_TOO_LARGE');
      expect(service.requests.length).toBe(before);
      // Under the limit it goes through.
      expect((await post(app.port, '/small/echo', 'application/json', JSON.stringify({ a: 'x'.repeat(100) }))).status).toBe(200);
    });

    it('refuses JSON keys that would reach a prototype', async () => {
      const before = service.requests.length;
      for (const body of ['{"__proto__":{"polluted":"yes"}}', '{"order":{"constructor":{"prototype":{"polluted":"yes"}}}}', '{"order":{"@__proto__":"x"}}']) {
        expectProblem(await post(app.port, '/legacy/echo', 'application/json', body), 400, 'ERR_BAD_REQUEST_BODY');
      }
      expect(service.requests.length).toBe(before);
      expect(({} as Json).polluted).toBeUndefined();
    });
  });

  describe('an XML client in front of a JSON service', () => {
    it('sends the XML body as JSON and the JSON answer back as XML', async () => {
      const body = '<?xml version="1.0" encoding="UTF-8"?><order id="7"><line><sku>A-1</sku><qty>02</qty></line><note/><name>Zoë</name></order>';
      const res = await post(app.port, '/xml-client/orders', 'application/xml', body);
      expect(res.status).toBe(200);
      const sent = last(jsonService);
      expect(sent.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(Number(sent.headers['content-length'])).toBe(sent.body.length);
      expect(JSON.parse(sent.body.toString('utf8'))).toEqual({ '@id': '7', line: [{ sku: 'A-1', qty: '02' }], note: '', name: 'Zoë' });

      expect(res.headers['content-type']).toBe('application/xml; charset=utf-8');
      expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
      expect(res.body).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?><reply><received id="7"><line><sku>A-1<\/sku><qty>02<\/qty><\/line><note><\/note><name>Zoë<\/name><\/received>/);
      expect(res.body).toContain('<contentType>application/json; charset=utf-8</contentType><status>accepted</status><count>3</count></reply>');
    });

    it('decodes a body declared as ISO-8859-1', async () => {
      for (const type of ['text/xml; charset=ISO-8859-1', 'application/xml']) {
        const res = await post(app.port, '/xml-client/cities', type, LATIN1_XML);
        expect(res.status).toBe(200);
        expect(JSON.parse(last(jsonService).body.toString('utf8'))).toEqual({ name: 'Zürich', note: 'crème brûlée' });
      }
    });

    it('answers 400 for malformed XML and 415 for JSON, forwarding nothing', async () => {
      const before = jsonService.requests.length;
      for (const body of ['<order><id>7</order>', '<a>1</a><b>2</b>', 'not xml', '<a x=1/>']) {
        expectProblem(await post(app.port, '/xml-client/orders', 'application/xml', body), 400, 'ERR_BAD_REQUEST_BODY');
      }
      expectProblem(await post(app.port, '/xml-client/orders', 'application/json', '{"a":1}'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expect(jsonService.requests.length).toBe(before);
    });

    it('passes a non-JSON answer of the service through untouched', async () => {
      const res = await post(app.port, '/xml-client/missing', 'application/xml', '<a/>');
      expect(res.status).toBe(404);
      expect(res.body).toBe('no');
    });

    it('refuses an entity bomb and an external entity at once, fetches nothing, and keeps serving others promptly', async () => {
      const before = jsonService.requests.length;
      const timed = async <T>(work: Promise<T>) => {
        const started = Date.now();
        const result = await work;
        return { result, ms: Date.now() - started };
      };
      const [bomb, external, bigBomb, good] = await Promise.all([
        timed(post(app.port, '/xml-client/orders', 'application/xml', BILLION_LAUGHS)),
        timed(post(app.port, '/xml-client/orders', 'text/xml', xxe(`${canary.url}/secret`))),
        timed(post(app.port, '/xml-client/orders', 'application/xml', BILLION_LAUGHS.replace('<lolz>', `<lolz>${'<a>&lol9;</a>'.repeat(2000)}`))),
        timed(post(app.port, '/xml-client/orders', 'application/xml', '<order><id>7</id></order>')),
      ]);
      expect(expectProblem(bomb.result, 400, 'ERR_BAD_REQUEST_BODY').detail).toMatch(/DOCTYPE and entity declarations are not accepted/);
      expectProblem(external.result, 400, 'ERR_BAD_REQUEST_BODY');
      expectProblem(bigBomb.result, 400, 'ERR_BAD_REQUEST_BODY');
      expect(good.result.status).toBe(200);
      for (const { ms } of [bomb, external, bigBomb, good]) expect(ms).toBeLessThan(1000);
      expect(canary.requests).toHaveLength(0);
      expect(jsonService.requests.length).toBe(before + 1);
    });

    it('refuses element and attribute names that would reach a prototype, in any spelling', async () => {
      const before = jsonService.requests.length;
      const attempts = [
        '<__proto__><polluted>yes</polluted></__proto__>',
        '<order><__proto__><polluted>yes</polluted></__proto__></order>',
        '<order><constructor><prototype><polluted>yes</polluted></prototype></constructor></order>',
        '<order __proto__="yes"/>',
        '<order><x:__proto__ xmlns:x="urn:x"><polluted>yes</polluted></x:__proto__></order>',
      ];
      for (const body of attempts) expectProblem(await post(app.port, '/xml-client/orders', 'application/xml', body), 400, 'ERR_BAD_REQUEST_BODY');
      expect(jsonService.requests.length).toBe(before);
      expect(({} as Json).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
    });

    it('refuses nesting deeper than maxDepth', async () => {
      const deep = `${'<a>'.repeat(30)}x${'</a>'.repeat(30)}`;
      expect(expectProblem(await post(app.port, '/shallow/x', 'application/xml', deep), 400, 'ERR_BAD_REQUEST_BODY').detail).toMatch(/nested deeper than 20/);
      expect((await post(app.port, '/shallow/x', 'application/xml', `${'<a>'.repeat(10)}x${'</a>'.repeat(10)}`)).status).toBe(200);
    });
  });

  describe('SOAP, as the gateway route option xml', () => {
    it('wraps the JSON body in an Envelope with the SOAPAction, and unwraps the answer', async () => {
      const res = await post(app.port, '/gw/soap', 'application/json', JSON.stringify({ id: 7 }));
      expect(res.status).toBe(200);
      const sent = last(service);
      expect(sent.headers['content-type']).toBe('text/xml; charset=utf-8');
      expect(sent.headers.soapaction).toBe('"urn:orders#GetOrder"');
      expect(sent.body.toString('utf8')).toBe(
        '<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetOrder xmlns="urn:orders"><id>7</id></GetOrder></soap:Body></soap:Envelope>',
      );
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(res.body)).toEqual({ '@xmlns': 'urn:orders', order: { '@id': '7', status: 'shipped', line: [{ sku: 'A-1' }] } });
    });

    it('turns a SOAP 1.1 Fault into a 502 problem carrying faultcode and faultstring', async () => {
      const problem = expectProblem(await post(app.port, '/gw/fail', 'application/json', JSON.stringify({ id: 7 })), 502, 'ERR_UPSTREAM_FAULT');
      expect(problem).toMatchObject({ faultcode: 'soap:Server', faultstring: 'Order database is offline' });
    });

    it('keeps answering faults as faults when passive health is off for the SOAP upstream', async () => {
      for (let i = 0; i < 5; i += 1) expectProblem(await post(app.port, '/gw/fail', 'application/json', JSON.stringify({ id: i })), 502, 'ERR_UPSTREAM_FAULT');
    });

    it('does not eject a SOAP service for its faults (HTTP 500 with an XML body), with passive health on', async () => {
      const codes: string[] = [];
      for (let i = 0; i < 6; i += 1) codes.push(JSON.parse((await post(app.port, '/gw/fault-ejects', 'application/json', JSON.stringify({ id: i }))).body).code);
      expect(codes).toEqual(Array(6).fill('ERR_UPSTREAM_FAULT'));
    });

    it('speaks SOAP 1.2: the action in the content type, and a 1.2 Fault as the same problem', async () => {
      const res = await post(app.port, '/gw/soap12', 'application/json', JSON.stringify({ GetOrder: { id: 7 } }));
      expect(res.status).toBe(200);
      const sent = last(service);
      expect(sent.headers['content-type']).toBe('application/soap+xml; charset=utf-8; action="urn:orders#GetOrder"');
      expect(sent.headers.soapaction).toBeUndefined();
      expect(sent.body.toString('utf8')).toContain('<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><GetOrder><id>7</id></GetOrder></soap:Body></soap:Envelope>');
      expect(JSON.parse(res.body)).toEqual({ GetOrderResponse: { status: 'shipped' } });

      const problem = expectProblem(await post(app.port, '/gw/soap12-fault', 'application/json', JSON.stringify({ GetOrder: { id: 8 } })), 502, 'ERR_UPSTREAM_FAULT');
      expect(problem).toMatchObject({ faultcode: 'env:Sender', faultstring: 'No such order' });
    });

    it('answers 502 when a SOAP route gets an answer that is not an Envelope', async () => {
      expectProblem(await post(app.port, '/gw/not-soap', 'application/json', JSON.stringify({ Ping: '' })), 502, 'ERR_UPSTREAM_BAD_RESPONSE');
    });

    it('answers the route errors through the gateway: 415 and 400 as problems with the request id', async () => {
      expectProblem(await post(app.port, '/gw/soap', 'text/plain', 'id=7'), 415, 'ERR_UNSUPPORTED_MEDIA_TYPE');
      expectProblem(await post(app.port, '/gw/soap', 'application/json', JSON.stringify({ 'a b': 1 })), 400, 'ERR_BAD_REQUEST_BODY');
    });

    it('reports option mistakes at construction, with their path', () => {
      const route = (xml: unknown) => () => gateway({ routes: [{ path: '/x', upstream: service.url, xml: xml as never }] });
      expect(route({ soap: '1.3' })).toThrow(/"routes\[0\]\.xml\.soap"/);
      expect(route({ rooot: 'order' })).toThrow(/Did you mean "routes\[0\]\.xml\.root"/);
      expect(route({ onError: 'next' })).toThrow(/cannot be set inside a route/);
      expect(route({ root: 'not a name' })).toThrow(/must be an XML element name/);
      expect(route({ soap: { action: 'urn:"x"' } })).toThrow(ConfigError);
      expect(route({ soap: '1.1', contentType: 'text/xml' })).toThrow(/fixed by soap\.version/);
      expect(route({ limit: 'lots' })).toThrow(/"routes\[0\]\.xml\.limit"/);
      expect(route({ attributePrefix: 'a' })).toThrow(/attributePrefix/);
      expect(() => xmlBridge({ arrays: ['a..b'] })).toThrow(/"arrays\[0\]"/);
      expect(() => xmlBridge({ client: 'yaml' as never })).toThrow(/'json' or 'xml'/);
    });
  });
});
