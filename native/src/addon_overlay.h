/* Registers the overlay (TAP + VXLAN engine) calls on the addon's exports. */
#ifndef SWARMNET_ADDON_OVERLAY_H
#define SWARMNET_ADDON_OVERLAY_H
#include <node_api.h>
napi_status overlay_register(napi_env env, napi_value exports);
#endif
