{
  "targets": [
    {
      "target_name": "swarmnet",
      "sources": ["native/src/addon.c", "native/src/relay.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
