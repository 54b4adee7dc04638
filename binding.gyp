{
  "targets": [
    {
      "target_name": "swarmnet",
      "sources": ["native/src/addon.c", "native/src/sched_slice.c", "native/src/relay.c", "native/src/relay_pool.c", "native/src/relay_thread.c", "native/src/addon_relay.c", "native/src/addon_overlay.c", "native/src/vxlan.c", "native/src/vxlan_tx.c", "native/src/vxlan_rx.c", "native/src/offload.c", "native/src/esp.c", "native/src/udp.c", "native/src/udp_table.c", "native/src/addon_udp.c", "native/src/dns_fast.c", "native/src/addon_dns.c", "native/src/dns_forward.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11", "-pthread"],
      "ldflags": ["-pthread"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
