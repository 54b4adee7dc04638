/* Registers the UDP engine's calls (udpCreate ...) and udpConst on the addon's exports. */
#ifndef SWARMNET_ADDON_UDP_H
#define SWARMNET_ADDON_UDP_H
#include <node_api.h>
napi_status udp_register(napi_env env, napi_value exports);
#endif
