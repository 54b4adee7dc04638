export { Overlay, type OverlayOptions, type OverlayError } from './overlay.js';
export { NativeEngine } from './engine.js';
export { macForIp, formatMac } from './mac.js';
export { parseArpRequest, arpReply } from './arp.js';
export { OVERLAY_MTU, VXLAN_PORT, ENGINE_STATS, type EngineStat } from './constants.js';
export type { ContainerPlan, FrameEngine, NetworkPlan, OverlayPlan, RemoteEndpoint } from './types.js';
