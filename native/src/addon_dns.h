/* Registers the DNS fast path's calls (addon_dns.c) on the addon's exports. */
#ifndef SWARMNET_ADDON_DNS_H
#define SWARMNET_ADDON_DNS_H
#include <node_api.h>
napi_status dns_register(napi_env env, napi_value exports);
#endif
