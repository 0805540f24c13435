{
  "targets": [
    {
      "target_name": "png_binding",
      "sources": ["native/addon.cc", "native/png.cc"],
      "include_dirs": [
        "<!(node -p \"require('path').dirname(require.resolve('@facegate/native-errors/package.json')) + '/include'\")"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O2", "-fvisibility=hidden", "-Wall", "-Wextra"],
      "ldflags": ["-Wl,--exclude-libs,ALL"],
      "libraries": ["-lpng16"]
    }
  ]
}
