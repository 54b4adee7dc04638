/** Variables: every syntax of compose-spec 12-interpolation.md, the .env file beside the first file, warnings and errors. */
import t from 'tap';
import { interpolate, type Variables } from '../../src/stack/compose/interpolate.js';
import type { Source } from '../../src/stack/types.js';
import { errorOf, load, loadError, service } from '../fixtures/compose/files.js';

const at: Source = { file: 'compose.yml', path: 'services.web.image' };

function vars(env: Record<string, string>, unset: string[] = []): Variables {
  return { lookup: (n) => env[n], unset: (n) => unset.push(n) };
}

t.test('the syntaxes, table-driven', async (t) => {
  const env = { SET: 'v', EMPTY: '', PORT: '8080', INNER: 'in' };
  const cases: Array<[string, string]> = [
    ['plain text', 'plain text'],
    ['$SET', 'v'],
    ['${SET}', 'v'],
    ['a${SET}b$SET-c', 'avbv-c'],
    ['${UNSET:-d}', 'd'],
    ['${EMPTY:-d}', 'd'],
    ['${SET:-d}', 'v'],
    ['${UNSET-d}', 'd'],
    ['${EMPTY-d}', ''],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${UNSET:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET+alt}', ''],
    ['${SET:?never}', 'v'],
    ['${EMPTY?only when unset}', ''],
    ['$$SET', '$SET'],
    ['$${SET}', '${SET}'],
    ['cost: 5$', 'cost: 5$'],
    ['$1 and $-', '$1 and $-'],
    ['${UNSET:-${INNER}}', 'in'],
    ['${UNSET:-${ALSO_UNSET:-deep}}', 'deep'],
    ['${UNSET:-a ${INNER} b}:${PORT}', 'a in b:8080'],
    ['${UNSET:-}', ''],
    ['${UNSET:-with:colon-and-dash}', 'with:colon-and-dash'],
  ];
  for (const [text, want] of cases) t.equal(interpolate(text, vars(env), at), want, text);
});

t.test('an unset variable without a default is empty and reported', async (t) => {
  const unset: string[] = [];
  t.equal(interpolate('x${NOPE}y$NOPE2', vars({}, unset), at), 'xy');
  t.same(unset, ['NOPE', 'NOPE2']);
  const lazy: string[] = [];
  interpolate('${SET:-${NOT_NEEDED}}', vars({ SET: 'v' }, lazy), at);
  t.same(lazy, [], 'a default that is not used is not expanded');
});

t.test('required variables and bad formats are errors at the path', async (t) => {
  t.equal(errorOf(() => interpolate('${PORT:?set PORT to the public port}', vars({}), at)), 'compose.yml: services.web.image: variable PORT is required: set PORT to the public port');
  t.equal(errorOf(() => interpolate('${PORT:?}', vars({ PORT: '' }), at)), 'compose.yml: services.web.image: variable PORT is required');
  t.equal(errorOf(() => interpolate('${PORT?missing}', vars({ PORT: '' }), at)), '', '? accepts an empty value');
  t.equal(errorOf(() => interpolate('${PORT?missing ${WHY:-because}}', vars({}), at)), 'compose.yml: services.web.image: variable PORT is required: missing because');
  t.match(errorOf(() => interpolate('${OPEN', vars({}), at)), /^compose\.yml: services\.web\.image: invalid interpolation format/);
  t.match(errorOf(() => interpolate('${}', vars({}), at)), /invalid interpolation format: \$\{\}/);
  t.match(errorOf(() => interpolate('${A/b/c}', vars({}), at)), /invalid interpolation format/);
});

t.test('in a file: values interpolated, keys not; the error names the value path', async (t) => {
  const { spec, warnings } = load(t, {
    env: { PORT: '8080', NET: 'front', ALIAS: 'www', MODE: 'dnsrr' },
    files: {
      'compose.yml': `services:
  web:
    ports: ["\${PORT}:80", {target: 443, published: "\${TLS:-8443}"}]
    networks:
      front: {aliases: ["\${ALIAS}"]}
    deploy: {endpoint_mode: $MODE, labels: {"$KEY": "$$literal"}}
    image: "app:\${TAG}"
    command: "echo \${TAG} \${OTHER}"
networks:
  front:
    attachable: "\${ATTACH:-true}"
`,
    },
  });
  const web = service(spec, 'web');
  t.same(web.spec.ports?.map((p) => p.published), [8080, 8443]);
  t.same(web.spec.networks, [{ target: 'shop_front', aliases: ['www', 'web'] }]);
  t.equal(web.spec.endpointMode, 'dnsrr');
  t.equal(web.spec.labels?.$KEY, '$literal', 'the key stays as written, $$ is a literal $');
  t.equal(spec.networks[0]!.spec?.attachable, true, 'a boolean from a variable');
  t.same(warnings.filter((w) => w.startsWith('variable')), [
    'variable TAG is not set, substituting an empty string (compose.yml: services.web.image)',
    'variable OTHER is not set, substituting an empty string (compose.yml: services.web.command)',
  ], 'one warning per variable, where it is first used');
  t.equal(loadError(t, 'services:\n  web:\n    ports: ["${PORT:?give the port}:80"]\n'), 'compose.yml: services.web.ports[0]: variable PORT is required: give the port');
});

t.test('.env beside the first file; the environment wins', async (t) => {
  const files = {
    'app/compose.yml': 'services:\n  web:\n    ports: ["${PORT}:80", "${ADMIN}:81", "${QUOTED}:82", "${SINGLE}:83"]\n',
    'app/.env': [
      '# ports of the stack',
      'PORT=7000',
      'export ADMIN=7001 # inline comment',
      'QUOTED="700${LAST_DIGIT}"',
      "SINGLE='7003'",
      'LAST_DIGIT=2',
      'LAST_DIGIT_LATE=9',
      'BARE_NAME',
      '',
    ].join('\n'),
    'app/other.yml': 'services:\n  api:\n    ports: ["1${PORT}:90"]\n',
    '.env': 'PORT=1\n',
  };
  const { spec } = load(t, { files, use: ['app/compose.yml', 'app/other.yml'], env: { LAST_DIGIT: '2' } });
  t.same(service(spec, 'web').spec.ports?.map((p) => p.published), [7000, 7001, 7002, 7003]);
  t.same(service(spec, 'api').spec.ports?.map((p) => p.published), [17000], 'later files use the first file’s .env');
  const env = load(t, { files, use: ['app/compose.yml'], env: { PORT: '9000', LAST_DIGIT: '5' } });
  t.same(service(env.spec, 'web').spec.ports?.map((p) => p.published), [9000, 7001, 7005, 7003], 'the environment wins over .env');
  const empty = load(t, { files: { 'compose.yml': 'services:\n  web:\n    ports: ["${P:-5000}:80"]\n', '.env': 'P=6000\n' }, env: { P: '' } });
  t.same(service(empty.spec, 'web').spec.ports?.map((p) => p.published), [5000], 'set but empty in the environment: :- takes the default');
});

t.test('.env errors name the .env file and line', async (t) => {
  t.equal(loadError(t, 'services: {}\n', { '.env': 'A=1\nnot a line\n' }), '.env:2:1: expected KEY=VALUE');
  t.equal(loadError(t, 'services: {}\n', { '.env': 'A="open\n' }), '.env:1:1: missing closing "');
  t.equal(loadError(t, 'services: {}\n', { '.env': 'A=${B:?B is needed}\n' }), '.env: line 1: variable B is required: B is needed');
});
