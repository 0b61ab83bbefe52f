/**
 * Every server the testing kit starts is tracked here until it is closed, so one `closeAll()` in
 * `afterAll` frees them all and the test runner exits without open handles.
 */

/** Something the kit started that holds a port. */
export interface Closable {
  close(): Promise<void>;
}

const open = new Set<Closable>();

/** Tracks `server` until its own close() runs (which calls `untrack`). */
export function track(server: Closable): void {
  open.add(server);
}

export function untrack(server: Closable): void {
  open.delete(server);
}

/**
 * Closes every upstream and JWKS server the kit started and that is still open: `afterAll(closeAll)`.
 * Each test file has its own set under jest and vitest (each file gets its own module registry).
 */
export async function closeAll(): Promise<void> {
  const servers = [...open];
  open.clear();
  await Promise.all(servers.map((server) => server.close()));
}
