import { withoutPort } from '../../lib/client-address';

describe('withoutPort (client address for rate limits, IP rules and logs)', () => {
  it('drops the port of an IPv4 address: 203.0.113.7:40000 → 203.0.113.7', () => {
    expect(withoutPort('203.0.113.7:40000')).toBe('203.0.113.7');
  });

  it('drops the brackets and port of an IPv6 address: [2001:db8::7]:40000 → 2001:db8::7', () => {
    expect(withoutPort('[2001:db8::7]:40000')).toBe('2001:db8::7');
  });

  it('leaves a bare IPv6 address unchanged (its colons are not a port)', () => {
    expect(withoutPort('2001:db8::7')).toBe('2001:db8::7');
    expect(withoutPort('::1')).toBe('::1');
  });

  it('leaves an IPv4-mapped IPv6 address unchanged: ::ffff:1.2.3.4', () => {
    expect(withoutPort('::ffff:1.2.3.4')).toBe('::ffff:1.2.3.4');
  });

  it('leaves a plain IPv4 address unchanged', () => {
    expect(withoutPort('203.0.113.7')).toBe('203.0.113.7');
    expect(withoutPort('127.0.0.1')).toBe('127.0.0.1');
  });
});
