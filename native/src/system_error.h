// JS errors for failed system calls, shaped like Node's own system errors so that the
// TypeScript side can branch on `code` the same way it does for fs or net errors.

#ifndef ACVPN_TUN_SYSTEM_ERROR_H_
#define ACVPN_TUN_SYSTEM_ERROR_H_

#include <napi.h>

#include <string>

namespace acvpn {

// Builds an Error whose message names the call and the interface. Its properties are `code`
// ("EBUSY"), `errno` (negative as in Node, -16), `syscall` ("ioctl") and `interfaceName`, which
// is empty when the kernel was to pick the name. `error` is a positive errno value.
Napi::Error MakeSystemError(Napi::Env env, int error, const char* syscall,
                            const char* operation, const std::string& interfaceName);

}  // namespace acvpn

#endif  // ACVPN_TUN_SYSTEM_ERROR_H_
