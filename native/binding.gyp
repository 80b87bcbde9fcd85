{
  "targets": [
    {
      "target_name": "coati_native",
      "sources": ["src/addon.c", "src/errors.c", "src/handle.c", "src/netlink.c", "src/netns.c", "src/udp.c", "src/unixdgram.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
