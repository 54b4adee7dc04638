export { Overlay, type OverlayOptions, type OverlayError } from './overlay.js';
export { NativeEngine } from './engine.js';
export { macForIp, formatMac } from './mac.js';
export { parseArpRequest, arpReply } from './arp.js';
export { deriveSa, saInfo, EPOCH_PATTERN, KEY_BYTES, type SaEnds } from './esp.js';
export { OVERLAY_MTU, VXLAN_PORT, ESP_PORT, ESP_OVERHEAD, encryptedMtu, ENGINE_STATS, type EngineStat } from './constants.js';
export type { Cipher, ContainerInterface, ContainerPlan, FrameEngine, NetworkEncryption, NetworkPlan, OverlayPlan, RemoteEndpoint, SaDirection, SaState, SecurityAssociation } from './types.js';
export { registerOverlayMetrics } from './metrics.js';
export { registerKeyMetrics, registerKeyRotatorMetrics, type KeyRotatorCounts } from './key-metrics.js';
