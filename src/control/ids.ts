import { randomBytes } from 'node:crypto';
import { ID_LENGTH } from './constants.js';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A random object id of base-36 characters, like Swarm's. */
export function newId(): string {
  const bytes = randomBytes(ID_LENGTH);
  let id = '';
  for (const b of bytes) id += ALPHABET[b % 36];
  return id;
}
