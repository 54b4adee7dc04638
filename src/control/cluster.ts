/**
 * Cluster-wide trust records (`swarmnet-cluster` bucket): the CA certificate, the
 * certificate lifetime, and the join tokens. A token is stored as the SHA-256 of its
 * secret (what any manager checks a join against) and sealed with a key derived
 * from the CA key (so that any manager, and no worker, can print it again).
 */
import { Type, type Static } from '@sinclair/typebox';
import { NotFoundError } from '../util/errors.js';
import { Collection, type InvalidHandler } from './collection.js';
import { validator } from './schema.js';
import type { Store } from './types.js';

const Pem = Type.String({ minLength: 1, maxLength: 16384 });

export const ClusterCaSchema = Type.Object({ id: Type.String({ minLength: 1 }), cert: Pem, certExpiryMs: Type.Integer({ minimum: 1 }) });
export type ClusterCa = Static<typeof ClusterCaSchema>;

export const JoinTokenRecordSchema = Type.Object({ hash: Type.String({ pattern: '^[0-9a-f]{64}$' }), sealed: Type.String({ minLength: 1 }), rotated: Type.Integer({ minimum: 0 }) });
export type JoinTokenRecord = Static<typeof JoinTokenRecordSchema>;

export type Role = 'worker' | 'manager';

const KEY = { ca: 'ca', token: (role: Role) => `token.${role}` };

export class ClusterOps {
  readonly #ca: Collection<ClusterCa>;
  readonly #tokens: Collection<JoinTokenRecord>;

  constructor(store: Store, onInvalid: InvalidHandler) {
    this.#ca = new Collection(store, 'cluster', validator(ClusterCaSchema), onInvalid);
    this.#tokens = new Collection(store, 'cluster', validator(JoinTokenRecordSchema), onInvalid);
  }

  async ca(): Promise<ClusterCa> {
    const cur = await this.#ca.get(KEY.ca);
    if (!cur) throw new NotFoundError('this store holds no cluster (no CA record)');
    return cur.value;
  }

  /** Written once, by `init`. */
  async createCa(ca: ClusterCa): Promise<void> {
    await this.#ca.create(KEY.ca, ca);
  }

  async token(role: Role): Promise<JoinTokenRecord> {
    const cur = await this.#tokens.get(KEY.token(role));
    if (!cur) throw new NotFoundError(`no ${role} join token`);
    return cur.value;
  }

  /** Sets (init) or replaces (rotation) a role's token: the old one stops working at once. */
  async setToken(role: Role, record: JoinTokenRecord): Promise<void> {
    await this.#tokens.put(KEY.token(role), record);
  }
}
