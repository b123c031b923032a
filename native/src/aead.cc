#include "aead.h"

#include <cstring>
#include <string>

namespace acvpn {

namespace {

constexpr size_t kNonceLength = 12;
constexpr size_t kTagLength = 16;
// Additional data longer than this is a caller bug: DTLS 1.2 uses 13 bytes.
constexpr size_t kMaxAadLength = 64;

const EVP_CIPHER* CipherByName(const std::string& name, size_t* keyLength) {
  if (name == "aes-128-gcm") {
    *keyLength = 16;
    return EVP_aes_128_gcm();
  }
  if (name == "aes-256-gcm") {
    *keyLength = 32;
    return EVP_aes_256_gcm();
  }
  if (name == "chacha20-poly1305") {
    *keyLength = 32;
    return EVP_chacha20_poly1305();
  }
  return nullptr;
}

// Returns the bytes of a Uint8Array argument, or nullptr when the argument is something else.
uint8_t* BytesOf(const Napi::Value& value, size_t* length) {
  if (!value.IsTypedArray()) return nullptr;
  Napi::TypedArray array = value.As<Napi::TypedArray>();
  if (array.TypedArrayType() != napi_uint8_array) return nullptr;
  Napi::Uint8Array bytes = value.As<Napi::Uint8Array>();
  *length = bytes.ByteLength();
  return bytes.Data();
}

}  // namespace

Napi::Function Aead::DefineClass(Napi::Env env) {
  return ObjectWrap<Aead>::DefineClass(env, "Aead",
                                       {
                                           InstanceMethod<&Aead::Seal>("seal"),
                                           InstanceMethod<&Aead::Open>("open"),
                                       });
}

Aead::Aead(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Aead>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[2].IsBoolean()) {
    Napi::TypeError::New(env, "Aead(cipherName, key, encrypt): cipherName must be a string and encrypt a boolean")
        .ThrowAsJavaScriptException();
    return;
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  size_t expectedKeyLength = 0;
  const EVP_CIPHER* cipher = CipherByName(name, &expectedKeyLength);
  if (cipher == nullptr) {
    Napi::RangeError::New(env, "Aead: unsupported cipher \"" + name +
                                   "\", expected aes-128-gcm, aes-256-gcm or chacha20-poly1305")
        .ThrowAsJavaScriptException();
    return;
  }
  size_t keyLength = 0;
  uint8_t* key = BytesOf(info[1], &keyLength);
  if (key == nullptr || keyLength != expectedKeyLength) {
    Napi::RangeError::New(env, "Aead: " + name + " needs a " + std::to_string(expectedKeyLength) + "-byte key")
        .ThrowAsJavaScriptException();
    return;
  }
  encrypt_ = info[2].As<Napi::Boolean>().Value();
  int mode = encrypt_ ? 1 : 0;

  context_ = EVP_CIPHER_CTX_new();
  if (context_ == nullptr || EVP_CipherInit_ex(context_, cipher, nullptr, nullptr, nullptr, mode) != 1 ||
      EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_AEAD_SET_IVLEN, static_cast<int>(kNonceLength), nullptr) != 1 ||
      EVP_CipherInit_ex(context_, nullptr, nullptr, key, nullptr, mode) != 1) {
    Napi::Error::New(env, "Aead: OpenSSL could not set up " + name).ThrowAsJavaScriptException();
  }
}

Aead::~Aead() {
  // EVP_CIPHER_CTX_free wipes the key schedule.
  if (context_ != nullptr) EVP_CIPHER_CTX_free(context_);
}

Napi::Value Aead::Seal(const Napi::CallbackInfo& info) {
  if (!encrypt_) {
    Napi::Error::New(info.Env(), "Aead.seal: this context was created for open()").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  bool authentic = false;
  Run(info, &authentic);
  return info.Env().Undefined();
}

Napi::Value Aead::Open(const Napi::CallbackInfo& info) {
  if (encrypt_) {
    Napi::Error::New(info.Env(), "Aead.open: this context was created for seal()").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  bool authentic = false;
  if (!Run(info, &authentic)) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), authentic);
}

// Returns false after throwing a JS exception for bad arguments.
bool Aead::Run(const Napi::CallbackInfo& info, bool* authentic) {
  Napi::Env env = info.Env();
  size_t bufferLength = 0;
  size_t nonceLength = 0;
  size_t aadLength = 0;
  uint8_t* buffer = info.Length() >= 5 ? BytesOf(info[0], &bufferLength) : nullptr;
  uint8_t* nonce = info.Length() >= 5 ? BytesOf(info[3], &nonceLength) : nullptr;
  uint8_t* aad = info.Length() >= 5 ? BytesOf(info[4], &aadLength) : nullptr;
  if (buffer == nullptr || nonce == nullptr || aad == nullptr || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "Aead: expected (buffer, offset, length, nonce, aad) with Uint8Arrays and numbers")
        .ThrowAsJavaScriptException();
    return false;
  }
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  int64_t length = info[2].As<Napi::Number>().Int64Value();
  if (offset < 0 || length < 0 || static_cast<uint64_t>(offset + length) + kTagLength > bufferLength ||
      length > INT32_MAX || nonceLength != kNonceLength || aadLength > kMaxAadLength) {
    Napi::RangeError::New(env, "Aead: offset and length plus the 16-byte tag must lie inside the " +
                                   std::to_string(bufferLength) + "-byte buffer, and the nonce must be 12 bytes")
        .ThrowAsJavaScriptException();
    return false;
  }

  uint8_t* data = buffer + offset;
  uint8_t* tag = data + length;
  int mode = encrypt_ ? 1 : 0;
  int written = 0;
  int finalWritten = 0;
  bool ok = EVP_CipherInit_ex(context_, nullptr, nullptr, nullptr, nonce, mode) == 1 &&
            EVP_CipherUpdate(context_, nullptr, &written, aad, static_cast<int>(aadLength)) == 1;
  if (ok && !encrypt_) {
    ok = EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLength), tag) == 1;
  }
  // GCM and ChaCha20-Poly1305 are stream modes: in-place update is allowed and writes exactly
  // `length` bytes, and Final writes none.
  ok = ok && EVP_CipherUpdate(context_, data, &written, data, static_cast<int>(length)) == 1;
  if (encrypt_) {
    ok = ok && EVP_CipherFinal_ex(context_, data + written, &finalWritten) == 1 &&
         EVP_CIPHER_CTX_ctrl(context_, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLength), tag) == 1;
    if (!ok) {
      Napi::Error::New(env, "Aead.seal: OpenSSL failed to encrypt the record").ThrowAsJavaScriptException();
      return false;
    }
    *authentic = true;
    return true;
  }
  *authentic = ok && EVP_CipherFinal_ex(context_, data + written, &finalWritten) == 1;
  return true;
}

}  // namespace acvpn
