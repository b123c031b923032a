# The TUN addon (Linux only: it includes <linux/if_tun.h>). Built offline against the Node
# headers under /usr through the nodedir setting in the repository's .npmrc.
{
  "targets": [
    {
      "target_name": "acvpn_tun",
      "sources": [
        "src/addon.cc",
        "src/aead.cc",
        "src/system_error.cc",
        "src/tun_handle.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-Wall",
        "-Wextra"
      ]
    }
  ]
}
