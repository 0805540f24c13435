{
  "targets": [
    {
      "target_name": "faiss_binding",
      "sources": [
        "native/addon.cc",
        "native/arguments.cc",
        "native/blas.cc",
        "native/index_bytes.cc",
        "native/index_handle.cc",
        "native/index_traits.cc",
        "native/simd_flat.cc",
        "native/thread_count.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('path').dirname(require.resolve('@facegate/native-errors/package.json')) + '/include'\")"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fopenmp", "-frtti", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "ldflags": [
        "-fopenmp",
        "-Wl,--exclude-libs,ALL"
      ],
      "libraries": ["-lfaiss", "-llapack", "-lblas"]
    }
  ]
}
