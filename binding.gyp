{
  "targets": [
    {
      "target_name": "timeskew",
      "sources": [
        "native/addon.cc",
        "native/elf_image.cc",
        "native/frame_table.cc",
        "native/image_cache.cc",
        "native/status.cc",
        "native/blob_layout.cc",
        "native/proc.cc",
        "native/target_memory.cc",
        "native/stop_world.cc",
        "native/injector.cc",
        "native/publish.cc",
        "native/fast_update.cc",
        "native/helper_process.cc",
        "native/launcher.cc",
        "native/x86_64/decoder.cc",
        "native/x86_64/planner.cc",
        "native/x86_64/payload.cc",
        "native/x86_64/blob_builder.cc",
        "native/x86_64/registers.cc",
        "native/x86_64/in_flight.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-Wall", "-Wextra", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "-O2"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fno-exceptions"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"]
    }
  ]
}
