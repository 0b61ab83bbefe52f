/**
 * The container and Kubernetes examples say what `frontdoor serve` exposes: the manifests parse, the probes ask
 * the admin paths on the port given to `--admin-port`, the ConfigMap's gateway.yaml checks out as `frontdoor check`
 * would, the HPA scales the Deployment, and the Dockerfile's HEALTHCHECK, ports, user and stop signal agree with
 * its command. (No docker here: the image itself is not built by the tests.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { checkFile } from '../../lib/cli';
import { ADMIN_PATHS, SERVE_DEFAULTS } from '../../lib/serve';

const root = path.join(__dirname, '..', '..');
const dir = path.join(root, 'examples', 'kubernetes');

type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; spec?: Record<string, unknown>; data?: Record<string, string> };

const files = readdirSync(dir).filter((file) => file.endsWith('.yaml'));
const manifests: Manifest[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((document) => {
    if (document.errors.length) throw new Error(`${file}: ${document.errors.map((error) => error.message).join('; ')}`);
    return document.toJS() as Manifest;
  }),
);
const byKind = (kind: string) => {
  const found = manifests.filter((manifest) => manifest.kind === kind);
  expect(found).toHaveLength(1);
  return found[0];
};

/** The value after `flag` in an argument list. */
const flag = (args: string[], name: string) => {
  const at = args.indexOf(name);
  return at === -1 ? undefined : args[at + 1];
};

interface Container {
  args: string[];
  env?: Array<{ name: string; value?: string }>;
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { httpGet: { path: string; port: string | number } };
  livenessProbe: { httpGet: { path: string; port: string | number } };
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}

describe('examples/kubernetes', () => {
  const deployment = byKind('Deployment');
  const pod = (deployment.spec as { template: { spec: { containers: Container[]; volumes: Array<{ name: string; configMap?: { name: string } }>; terminationGracePeriodSeconds: number } } }).template.spec;
  const container = pod.containers[0];

  it('parses, one resource of each kind the example needs, and the kustomization lists every file', () => {
    expect(manifests.map((manifest) => manifest.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Kustomization', 'Service']);
    const kustomization = byKind('Kustomization') as unknown as { resources: string[] };
    expect([...kustomization.resources].sort()).toEqual(files.filter((file) => file !== 'kustomization.yaml').sort());
  });

  it('runs frontdoor serve on the mounted ConfigMap, and probes the admin paths on the --admin-port', () => {
    expect(container.args.slice(0, 2)).toEqual(['serve', '/config/gateway.yaml']);
    const portNamed = (name: string | number) => (typeof name === 'number' ? name : container.ports.find((port) => port.name === name)?.containerPort);
    const adminPort = Number(flag(container.args, '--admin-port'));
    const publicPort = Number(flag(container.args, '--port') ?? SERVE_DEFAULTS.port);
    expect(adminPort).toBeGreaterThan(0);
    expect(adminPort).not.toBe(publicPort);
    expect(container.readinessProbe.httpGet.path).toBe(ADMIN_PATHS.ready);
    expect(portNamed(container.readinessProbe.httpGet.port)).toBe(adminPort);
    expect(container.livenessProbe.httpGet.path).toBe(ADMIN_PATHS.health);
    expect(portNamed(container.livenessProbe.httpGet.port)).toBe(adminPort);
    expect(portNamed('http')).toBe(publicPort);

    // The Service sends traffic to the public port only.
    const service = byKind('Service') as unknown as { spec: { ports: Array<{ targetPort: string | number }> } };
    expect(service.spec.ports.map((port) => portNamed(port.targetPort))).toEqual([publicPort]);

    const mount = container.volumeMounts.find((each) => each.mountPath === '/config');
    const volume = pod.volumes.find((each) => each.name === mount?.name);
    expect(volume?.configMap?.name).toBe(byKind('ConfigMap').metadata.name);
  });

  it('gives the drain time to finish before the kubelet kills the pod', () => {
    const drainSeconds = Number(/^(\d+)s$/.exec(flag(container.args, '--drain-timeout') ?? '')?.[1] ?? SERVE_DEFAULTS.drainTimeoutMs / 1000);
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(drainSeconds + preStop);
  });

  it('scales the Deployment with the HPA', () => {
    const hpa = byKind('HorizontalPodAutoscaler') as unknown as { spec: { scaleTargetRef: { kind: string; name: string }; minReplicas: number; maxReplicas: number } };
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
  });

  it("has a gateway.yaml that checks out as frontdoor check would (with the Deployment's environment)", async () => {
    const tmp = await mkdtemp(path.join(tmpdir(), 'frontdoor-k8s-'));
    try {
      const file = path.join(tmp, 'gateway.yaml');
      await writeFile(file, byKind('ConfigMap').data?.['gateway.yaml'] ?? '');
      const env = Object.fromEntries((container.env ?? []).map((variable) => [variable.name, variable.value ?? '']));
      const config = await checkFile(file, env);
      expect(config.options.routes.length).toBeGreaterThan(0);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((line) => /^[A-Z]+\s/.test(line));
  const all = (name: string) => instructions.filter((line) => line.startsWith(`${name} `)).map((line) => line.slice(name.length + 1).trim());
  const last = (name: string) => all(name).at(-1) ?? '';

  it('is multi-stage on a node image, runs as the unprivileged node user, and stops with SIGTERM', () => {
    expect(all('FROM').length).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^ARG NODE_IMAGE=node:\d+-[a-z]+-slim$/m);
    expect(last('USER')).toBe('node');
    expect(last('STOPSIGNAL')).toBe('SIGTERM');
  });

  it('runs frontdoor serve /config/gateway.yaml, and its HEALTHCHECK asks /healthz on the admin port it exposes', () => {
    const entrypoint = JSON.parse(last('ENTRYPOINT')) as string[];
    const command = JSON.parse(last('CMD')) as string[];
    expect(entrypoint.at(-1)).toMatch(/bin\/frontdoor\.js$/);
    expect(command.slice(0, 2)).toEqual(['serve', '/config/gateway.yaml']);
    const adminPort = flag(command, '--admin-port');
    const publicPort = flag(command, '--port');
    expect(last('EXPOSE').split(/\s+/).sort()).toEqual([publicPort, adminPort].sort());
    expect(last('HEALTHCHECK')).toContain(`http://127.0.0.1:${adminPort}${ADMIN_PATHS.health}`);
  });
});
