#include "tun_handle.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "system_error.h"

namespace acvpn {

namespace {

// An IPv4 link must carry at least 68-byte packets (RFC 791), and a TUN device's MTU cannot
// exceed 65535, so a slot of 65535 bytes never truncates a packet.
constexpr double kMinPacketSize = 68;
constexpr double kMaxPacketSize = 65535;
constexpr double kMaxBatch = 1024;

// Releases the fd and the poll handle. The block is freed once libuv has closed the handle, or
// at once when no handle was created. The cleanup hook is removed only then, so that at
// teardown Node keeps the event loop running until libuv is done with the handle.
void FinishClose(TunResources* resources) {
  if (resources->cleanupHook != nullptr) napi_remove_async_cleanup_hook(resources->cleanupHook);
  delete resources;
}

void OnPollClosed(uv_handle_t* handle) {
  FinishClose(static_cast<TunResources*>(handle->data));
}

void CloseResources(TunResources* resources) {
  if (resources->fd >= 0) {
    // libuv documents that the fd may be closed right after uv_poll_stop(). Closing it here,
    // not in the uv_close callback, removes the interface before close() returns to JS.
    if (resources->pollInitialized) uv_poll_stop(&resources->poll);
    close(resources->fd);
    resources->fd = -1;
  }
  if (!resources->pollInitialized) {
    FinishClose(resources);
    return;
  }
  if (!resources->pollClosing) {
    resources->pollClosing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&resources->poll), OnPollClosed);
  }
}

void OnPollCallback(uv_poll_t* handle, int status, int /* events */) {
  TunResources* resources = static_cast<TunResources*>(handle->data);
  if (resources->owner != nullptr) resources->owner->OnPollEvent(status);
}

void OnCleanupHook(napi_async_cleanup_hook_handle /* handle */, void* data) {
  TunResources* resources = static_cast<TunResources*>(data);
  // Without an owner the block is already closing, and OnPollClosed removes the hook.
  if (resources->owner != nullptr) resources->owner->ReleaseForTeardown();
}

bool IsIntegerInRange(const Napi::Value& value, double min, double max) {
  if (!value.IsNumber()) return false;
  double number = value.As<Napi::Number>().DoubleValue();
  return number >= min && number <= max && std::floor(number) == number;
}

}  // namespace

Napi::Function TunHandle::DefineClass(Napi::Env env) {
  return ObjectWrap<TunHandle>::DefineClass(
      env, "TunHandle",
      {
          InstanceAccessor<&TunHandle::GetFd>("fd"),
          InstanceAccessor<&TunHandle::GetName>("name"),
          InstanceAccessor<&TunHandle::GetDroppedOversize>("droppedOversize"),
          InstanceMethod<&TunHandle::Start>("start"),
          InstanceMethod<&TunHandle::Pause>("pause"),
          InstanceMethod<&TunHandle::Resume>("resume"),
          InstanceMethod<&TunHandle::Write>("write"),
          InstanceMethod<&TunHandle::WriteBatch>("writeBatch"),
          InstanceMethod<&TunHandle::Close>("close"),
      });
}

// ---- open ----

TunHandle::TunHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunHandle>(info) {
  Napi::Env env = info.Env();
  if (info.Length() >= 4 && info[0].IsNumber() && info[3].IsString()) {
    AdoptSocket(info);
    return;
  }
  if (info.Length() < 3 || !info[0].IsString()) {
    Napi::TypeError::New(env, "TunHandle(name, maxPacketSize, maxBatch): name must be a string")
        .ThrowAsJavaScriptException();
    return;
  }
  std::string requested = info[0].As<Napi::String>().Utf8Value();
  if (requested.size() >= IFNAMSIZ || requested.find('\0') != std::string::npos) {
    Napi::RangeError::New(env, "interface name \"" + requested + "\" is invalid: Linux allows at most " +
                                   std::to_string(IFNAMSIZ - 1) + " bytes and no NUL byte")
        .ThrowAsJavaScriptException();
    return;
  }
  if (!ParseLimits(info)) return;

  // O_CLOEXEC keeps the fd out of spawned commands (ip, resolvconf): an inherited copy would
  // keep the interface alive after close().
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    MakeSystemError(env, errno, "open", "open /dev/net/tun", requested).ThrowAsJavaScriptException();
    return;
  }

  // IFF_NO_PI: each read or write is exactly one IP packet, without the 4-byte packet-info
  // header. An empty name lets the kernel pick one from "tun%d".
  struct ifreq request;
  std::memset(&request, 0, sizeof(request));
  request.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(request.ifr_name, requested.data(), requested.size());
  if (ioctl(fd, TUNSETIFF, &request) < 0) {
    int error = errno;
    close(fd);
    MakeSystemError(env, error, "ioctl", "ioctl TUNSETIFF", requested).ThrowAsJavaScriptException();
    return;
  }
  name_.assign(request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ));
  TakeFd(env, fd);
}

void TunHandle::AdoptSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = static_cast<int>(info[0].As<Napi::Number>().Int32Value());
  name_ = info[3].As<Napi::String>().Utf8Value();
  if (!ParseLimits(info)) {
    close(fd);
    return;
  }
  socket_ = true;
  TakeFd(env, fd);
}

void TunHandle::TakeFd(Napi::Env env, int fd) {
  resources_ = new TunResources();
  resources_->fd = fd;
  resources_->owner = this;
  if (napi_add_async_cleanup_hook(env, OnCleanupHook, resources_, &resources_->cleanupHook) != napi_ok) {
    resources_->owner = nullptr;
    resources_->cleanupHook = nullptr;
    CloseResources(resources_);
    resources_ = nullptr;
    Napi::Error::New(env, "could not register the cleanup hook of TUN device " + name_)
        .ThrowAsJavaScriptException();
  }
}

bool TunHandle::ParseLimits(const Napi::CallbackInfo& info) {
  if (!IsIntegerInRange(info[1], kMinPacketSize, kMaxPacketSize)) {
    Napi::RangeError::New(info.Env(), "TunHandle: maxPacketSize must be an integer from 68 to 65535")
        .ThrowAsJavaScriptException();
    return false;
  }
  if (!IsIntegerInRange(info[2], 1, kMaxBatch)) {
    Napi::RangeError::New(info.Env(), "TunHandle: maxBatch must be an integer from 1 to 1024")
        .ThrowAsJavaScriptException();
    return false;
  }
  maxPacketSize_ = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  maxBatch_ = static_cast<uint32_t>(info[2].As<Napi::Number>().DoubleValue());
  return true;
}

TunHandle::~TunHandle() {
  // Reached when the object is garbage-collected without close(), or at environment teardown.
  // A started device holds a strong reference until close(), so the first case only happens
  // for a device that never read.
  if (resources_ != nullptr) {
    TunResources* resources = resources_;
    resources_ = nullptr;
    resources->owner = nullptr;
    CloseResources(resources);
  }
  if (asyncContext_ != nullptr) napi_async_destroy(Env(), asyncContext_);
}

Napi::Value TunHandle::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), resources_ != nullptr ? resources_->fd : -1);
}

Napi::Value TunHandle::GetName(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), name_);
}

Napi::Value TunHandle::GetDroppedOversize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), droppedOversize_);
}

// ---- read: TUN fd -> uv_poll -> one batch -> JS ----

Napi::Value TunHandle::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (resources_ == nullptr) {
    Napi::Error::New(env, "start: TUN device " + name_ + " is closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (started_) {
    Napi::Error::New(env, "start: TUN device " + name_ + " is already reading").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "start(onPackets, onError): both arguments must be functions")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // Allocated once and reused for every batch: the hot path allocates nothing.
  // The extra byte lets the last read of a full batch ask for maxPacketSize + 1 bytes too.
  Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::New(env, maxPacketSize_ * maxBatch_ + 1);
  Napi::Uint32Array lengths = Napi::Uint32Array::New(env, maxBatch_);
  napi_async_context asyncContext;
  if (napi_async_init(env, Value(), Napi::String::New(env, "acvpn:TunHandle"), &asyncContext) != napi_ok) {
    Napi::Error::New(env, "start: napi_async_init failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  int status = uv_poll_init(loop, &resources_->poll, resources_->fd);
  if (status < 0) {
    napi_async_destroy(env, asyncContext);
    MakeSystemError(env, -status, "uv_poll_init", "uv_poll_init", name_).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  resources_->poll.data = resources_;
  resources_->pollInitialized = true;

  asyncContext_ = asyncContext;
  buffer_ = Napi::Persistent(buffer);
  lengths_ = Napi::Persistent(lengths);
  bufferData_ = buffer.Data();
  lengthsData_ = lengths.Data();
  onPackets_ = Napi::Persistent(info[0].As<Napi::Function>());
  onError_ = Napi::Persistent(info[1].As<Napi::Function>());
  started_ = true;
  // Like a socket, a reading device stays alive until close(), even with no JS reference.
  Ref();

  if (!paused_) uv_poll_start(&resources_->poll, UV_READABLE, OnPollCallback);
  return env.Undefined();
}

void TunHandle::OnPollEvent(int status) {
  if (resources_ == nullptr) return;

  // A poll error (libuv reports POLLERR as UV_EBADF) carries no reason. read() first, which
  // delivers any packet still queued and fails with the real errno, such as EBADFD once the
  // interface has been deleted.
  int readError = 0;
  size_t offset = 0;
  uint32_t count = 0;
  for (uint32_t attempt = 0; attempt < maxBatch_; attempt++) {
    // One byte more than a slot, so that a longer packet is detectable: Linux (checked on
    // 6.18) copies as much as fits and returns the bytes copied, not the packet length.
    ssize_t length = read(resources_->fd, bufferData_ + offset, maxPacketSize_ + 1);
    if (length < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) readError = errno;
      break;
    }
    if (length == 0) break;
    if (static_cast<size_t>(length) > maxPacketSize_) {
      droppedOversize_++;
      continue;
    }
    lengthsData_[count++] = static_cast<uint32_t>(length);
    offset += static_cast<size_t>(length);
  }

  // Packets left in the queue after maxBatch reads keep the fd readable, so libuv calls
  // again on its next turn, after other handles had theirs.
  if (count > 0) DeliverBatch(count);
  if (readError != 0) {
    StopAfterError(readError, "read", "read from TUN device");
  } else if (status < 0) {
    StopAfterError(-status, "poll", "poll TUN device");
  }
}

void TunHandle::DeliverBatch(uint32_t count) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  napi_value argv[3] = {buffer_.Value(), lengths_.Value(), Napi::Number::New(env, count)};
  CallJs(onPackets_, 3, argv);
}

void TunHandle::StopAfterError(int error, const char* syscall, const char* operation) {
  // The JS callback may have closed the device while handling the batch.
  if (resources_ == nullptr) return;
  failed_ = true;
  uv_poll_stop(&resources_->poll);

  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  napi_value argv[1] = {MakeSystemError(env, error, syscall, operation, name_).Value()};
  CallJs(onError_, 1, argv);
}

void TunHandle::CallJs(const Napi::FunctionReference& callback, size_t argc, const napi_value* argv) {
  // napi_make_callback, unlike a plain call, runs the microtask and nextTick queues afterwards
  // and keeps async_hooks context. An exception from the callback goes to 'uncaughtException',
  // as it would from any event-loop callback.
  Napi::Env env = Env();
  napi_value result;
  napi_status status = napi_make_callback(env, asyncContext_, Value(), callback.Value(), argc, argv, &result);
  if (status == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

Napi::Value TunHandle::Pause(const Napi::CallbackInfo& info) {
  if (!paused_ && resources_ != nullptr && started_ && !failed_) uv_poll_stop(&resources_->poll);
  paused_ = true;
  return info.Env().Undefined();
}

Napi::Value TunHandle::Resume(const Napi::CallbackInfo& info) {
  if (paused_ && resources_ != nullptr && started_ && !failed_) {
    uv_poll_start(&resources_->poll, UV_READABLE, OnPollCallback);
  }
  paused_ = false;
  return info.Env().Undefined();
}

// ---- write: JS -> TUN fd ----

// Returns the number of bytes written, or the negated errno: the caller decides which errors
// only drop this packet (EAGAIN, EINVAL...) and which end the device.
Napi::Value TunHandle::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    Napi::TypeError::New(env, "write(buffer, offset, length): buffer must be a Buffer or Uint8Array")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  double size = static_cast<double>(bytes.ByteLength());
  if (!IsIntegerInRange(info[1], 0, size) || !IsIntegerInRange(info[2], 0, size) ||
      info[1].As<Napi::Number>().DoubleValue() + info[2].As<Napi::Number>().DoubleValue() > size) {
    Napi::RangeError::New(env, "write(buffer, offset, length): offset and length must select bytes inside the " +
                                   std::to_string(bytes.ByteLength()) + "-byte buffer")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (resources_ == nullptr) return Napi::Number::New(env, -EBADF);

  size_t offset = static_cast<size_t>(info[1].As<Napi::Number>().DoubleValue());
  size_t length = static_cast<size_t>(info[2].As<Napi::Number>().DoubleValue());
  ssize_t written;
  do {
    written = write(resources_->fd, bytes.Data() + offset, length);
  } while (written < 0 && errno == EINTR);
  return Napi::Number::New(env, written < 0 ? -errno : static_cast<double>(written));
}

// writeBatch(buffer, offsets, lengths, count, status) -> packets written. Writes packet i =
// buffer[offsets[i], offsets[i] + lengths[i]) for i < count, in order, and stops at the first
// packet that fails: the return value is then its index and status[0] its errno. A socket gets
// one sendmmsg(2) for the whole batch; a TUN device, which takes one packet per write(2), gets a
// loop of write(2) without a trip back to JS per packet.
Napi::Value TunHandle::WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray() ||
      !info[3].IsNumber() || !info[4].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    Napi::TypeError::New(env, "writeBatch(buffer, offsets, lengths, count, status): expected a Uint8Array, two "
                              "Uint32Arrays, a number and an Int32Array")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array offsets = info[1].As<Napi::Uint32Array>();
  Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
  Napi::Int32Array status = info[4].As<Napi::Int32Array>();
  double count = info[3].As<Napi::Number>().DoubleValue();
  if (!IsIntegerInRange(info[3], 0, kMaxBatch) || count > offsets.ElementLength() ||
      count > lengths.ElementLength() || status.ElementLength() < 1) {
    Napi::RangeError::New(env, "writeBatch: count must be an integer from 0 to 1024 and at most the length of "
                               "offsets and lengths, and status needs one element")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint32_t total = static_cast<uint32_t>(count);
  size_t size = bytes.ByteLength();
  for (uint32_t i = 0; i < total; i++) {
    if (static_cast<size_t>(offsets[i]) + lengths[i] > size) {
      Napi::RangeError::New(env, "writeBatch: packet " + std::to_string(i) + " lies outside the " +
                                     std::to_string(size) + "-byte buffer")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  status[0] = 0;
  if (resources_ == nullptr) {
    status[0] = EBADF;
    return Napi::Number::New(env, 0);
  }

  int fd = resources_->fd;
  uint8_t* data = bytes.Data();
  uint32_t done = 0;
  if (socket_) {
    if (messages_.size() < total) {
      messages_.resize(total);
      vectors_.resize(total);
    }
    for (uint32_t i = 0; i < total; i++) {
      vectors_[i].iov_base = data + offsets[i];
      vectors_[i].iov_len = lengths[i];
      std::memset(&messages_[i], 0, sizeof(messages_[i]));
      messages_[i].msg_hdr.msg_iov = &vectors_[i];
      messages_[i].msg_hdr.msg_iovlen = 1;
    }
    while (done < total) {
      int sent = sendmmsg(fd, messages_.data() + done, total - done, 0);
      if (sent < 0) {
        if (errno == EINTR) continue;
        status[0] = errno;
        break;
      }
      done += static_cast<uint32_t>(sent);
    }
    return Napi::Number::New(env, done);
  }
  while (done < total) {
    ssize_t written = write(fd, data + offsets[done], lengths[done]);
    if (written < 0) {
      if (errno == EINTR) continue;
      status[0] = errno;
      break;
    }
    done++;
  }
  return Napi::Number::New(env, done);
}

// ---- close ----

Napi::Value TunHandle::Close(const Napi::CallbackInfo& info) {
  CloseNow();
  return info.Env().Undefined();
}

void TunHandle::CloseNow() {
  if (resources_ == nullptr) return;
  TunResources* resources = resources_;
  resources_ = nullptr;
  resources->owner = nullptr;
  CloseResources(resources);

  if (started_) {
    onPackets_.Reset();
    onError_.Reset();
    buffer_.Reset();
    lengths_.Reset();
    bufferData_ = nullptr;
    lengthsData_ = nullptr;
    napi_async_destroy(Env(), asyncContext_);
    asyncContext_ = nullptr;
    Unref();
  }
}

void TunHandle::ReleaseForTeardown() {
  // No JS may run here: only the fd and the poll handle are released. The finalizer frees the
  // rest when the environment deletes its references.
  TunResources* resources = resources_;
  resources_ = nullptr;
  resources->owner = nullptr;
  CloseResources(resources);
}

}  // namespace acvpn
