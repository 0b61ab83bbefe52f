/**
 * The mTLS scheme of authenticate(): the client certificate of an HTTPS server with `requestCert: true`,
 * trusted by the server's CA list, mapped to a consumer by its subject CN (or by a function).
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { defineSchema, fn } from '../../lib/schema';
import { ApiKeyConsumer, consumerFields, Scheme, unauthorized } from './common';

export interface MtlsOptions {
  /** Accept only these subject CNs, each with its consumer. Defaults to any authorised certificate, id = CN. */
  consumers?: Record<string, Omit<ApiKeyConsumer, 'id'> & { id?: string }>;
  /** Maps a certificate to a consumer (null rejects it). Overrides `consumers`. Defaults to none. */
  map?: (certificate: PeerCertificate) => ApiKeyConsumer | null | undefined;
}

/** The `mtls` options of authenticate() (`mtls: true` is the same as `{}`). */
export const mtlsSchema = defineSchema((z) =>
  z.strictObject(
    {
      consumers: z
        .record(z.string(), z.strictObject({ ...consumerFields(z), id: consumerFields(z).id.optional() }, { error: "must be a consumer, e.g. { id: 'billing', scopes: ['orders:read'] }." }), {
          error: "must be an object of subject CN → consumer, e.g. { 'billing.internal': { scopes: ['orders:read'] } }.",
        })
        .optional(),
      map: fn<NonNullable<MtlsOptions['map']>>(z, '(certificate) => consumer | null').optional(),
    },
    { error: 'must be true or an object of mTLS options.' },
  ),
);

export type MtlsConfig = ReturnType<ReturnType<typeof mtlsSchema>['parse']>;

export function mtlsScheme(config: MtlsConfig, realm: string): Scheme {
  const { consumers, map } = config;
  const challenge = `Mutual realm="${realm}"`;
  return {
    name: 'mtls',
    challenge,
    async attempt(req) {
      const socket = req.socket as TLSSocket;
      if (!socket.encrypted || typeof socket.getPeerCertificate !== 'function') return false;
      const certificate = socket.getPeerCertificate();
      if (!certificate || Object.keys(certificate).length === 0) return false;
      const reject = (detail: string) => unauthorized('ERR_AUTH_CERT_INVALID', detail, challenge, socket.authorizationError);
      if (!socket.authorized) throw reject('The client certificate is not trusted.');
      const cn = [certificate.subject?.CN].flat()[0];
      let consumer: ApiKeyConsumer | null | undefined;
      if (map) consumer = map(certificate);
      else if (consumers) consumer = cn && Object.hasOwn(consumers, cn) ? { id: cn, ...consumers[cn] } : undefined;
      else consumer = cn ? { id: cn } : undefined;
      if (!consumer) throw reject('The client certificate is not allowed here.');
      return { id: consumer.id, scheme: 'mtls', scopes: [...(consumer.scopes ?? [])], ...(consumer.tier ? { tier: consumer.tier } : {}) };
    },
  };
}
