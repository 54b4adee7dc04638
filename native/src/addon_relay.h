/* Registers the TCP relay engine's calls (addon_relay.c) on the addon's exports. */
#ifndef SWARMNET_ADDON_RELAY_H
#define SWARMNET_ADDON_RELAY_H
#include <node_api.h>
napi_status relay_register(napi_env env, napi_value exports);
#endif
