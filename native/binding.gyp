{
  "targets": [
    {
      "target_name": "coati_native",
      "sources": ["src/addon.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
