// AEAD encryption of DTLS records with OpenSSL's EVP interface, keeping one cipher context per
// key for the life of the epoch. node:crypto builds a new context (and key schedule) per record,
// which cost more CPU per packet than the rest of the data path together.
//
// The record layout, the nonce and the additional data stay in TypeScript (src/dtls/record.ts):
// this class only runs the cipher over bytes it is given. The key is copied into the OpenSSL
// context, which wipes it when the context is freed, and never leaves native memory again.

#ifndef ACVPN_TUN_AEAD_H_
#define ACVPN_TUN_AEAD_H_

#include <napi.h>
#include <openssl/evp.h>

namespace acvpn {

class Aead : public Napi::ObjectWrap<Aead> {
 public:
  static Napi::Function DefineClass(Napi::Env env);

  // JS: new Aead(cipherName, key, encrypt). cipherName is a node:crypto name ("aes-128-gcm",
  // "aes-256-gcm" or "chacha20-poly1305"); the tag is always 16 bytes and the nonce 12.
  explicit Aead(const Napi::CallbackInfo& info);
  ~Aead() override;

 private:
  // seal(buffer, offset, length, nonce, aad): encrypts buffer[offset, offset + length) in place
  // and writes the tag right behind it.
  Napi::Value Seal(const Napi::CallbackInfo& info);
  // open(buffer, offset, length, nonce, aad) -> boolean: decrypts buffer[offset, offset + length)
  // in place against the tag right behind it. False when authentication failed; the bytes are
  // then garbage.
  Napi::Value Open(const Napi::CallbackInfo& info);

  bool Run(const Napi::CallbackInfo& info, bool* authentic);

  EVP_CIPHER_CTX* context_ = nullptr;
  bool encrypt_ = true;
};

}  // namespace acvpn

#endif  // ACVPN_TUN_AEAD_H_
