#include "system_error.h"

#include <string.h>
#include <uv.h>

namespace acvpn {

namespace {

// glibc 2.32 and later name every errno the kernel returns. libuv's table lacks some that TUN
// devices produce (EBADFD once the interface is deleted), so it is only the fallback.
void DescribeErrno(int error, std::string& code, std::string& description) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char* name = strerrorname_np(error);
  const char* text = strerrordesc_np(error);
  if (name != nullptr && text != nullptr) {
    code = name;
    description = text;
    return;
  }
#endif
  char buffer[256];
  uv_err_name_r(-error, buffer, sizeof(buffer));
  code = buffer;
  uv_strerror_r(-error, buffer, sizeof(buffer));
  description = buffer;
}

}  // namespace

Napi::Error MakeSystemError(Napi::Env env, int error, const char* syscall,
                            const char* operation, const std::string& interfaceName) {
  std::string code;
  std::string description;
  DescribeErrno(error, code, description);

  std::string message = std::string(operation) + " failed";
  if (!interfaceName.empty()) message += " for interface " + interfaceName;
  message += ": " + description + " (" + code + ")";

  Napi::Error result = Napi::Error::New(env, message);
  result.Set("code", Napi::String::New(env, code));
  result.Set("errno", Napi::Number::New(env, -error));
  result.Set("syscall", Napi::String::New(env, syscall));
  result.Set("interfaceName", Napi::String::New(env, interfaceName));
  return result;
}

}  // namespace acvpn
