// The N-API surface: argument conversion, promises, and errors carrying `code`. Engine work that
// stops the target happens in plain C++ (injector.h) on one libuv worker thread per call, because
// ptrace requests must come from the thread that attached. Updates at a known location
// (fast_update.h) never stop or wait on the target and run on the calling thread.
#include <napi.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "arch.h"
#include "elf_image.h"
#include "fast_update.h"
#include "frame_table.h"
#include "helper_process.h"
#include "injector.h"
#include "launcher.h"
#include "version.h"
#include "x86_64/dwarf_registers.h"

namespace timeskew {
namespace {

Napi::Error toJsError(Napi::Env env, const Status& status, pid_t pid) {
  Napi::Error error = Napi::Error::New(env, status.message);
  Napi::Object object = error.Value();
  object.Set("code", status.code);
  if (status.errnum != 0) object.Set("errno", status.errnum);
  if (status.syscall[0] != '\0') object.Set("syscall", status.syscall);
  if (status.hint[0] != '\0') object.Set("hint", status.hint);
  if (pid > 0) object.Set("pid", pid);
  return error;
}

Napi::Value rejectWith(Napi::Env env, const Status& status, pid_t pid) {
  auto deferred = Napi::Promise::Deferred::New(env);
  deferred.Reject(toJsError(env, status, pid).Value());
  return deferred.Promise();
}

Status invalidArgument(const char* what) {
  return failure("EINVAL", EINVAL, nullptr, nullptr, "%s", what);
}

bool readPid(const Napi::Value& value, pid_t& pid) {
  if (!value.IsNumber()) return false;
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 1 && number <= 4194304) || number != static_cast<double>(static_cast<int>(number))) {
    return false;
  }
  pid = static_cast<pid_t>(number);
  return true;
}

uint32_t readMask(const Napi::Object& object, const char* key) {
  Napi::Value value = object.Get(key);
  if (!value.IsNumber()) return 0;
  return value.As<Napi::Number>().Uint32Value() & ((1u << kClockCount) - 1);
}

bool readTable(const Napi::Object& object, ClockTable& table) {
  Napi::Value mask = object.Get("mask");
  Napi::Value offsets = object.Get("offsetsNs");
  if (!mask.IsNumber() || !offsets.IsArray()) return false;
  table.mask = readMask(object, "mask");
  table.keepMask = readMask(object, "keepMask");
  table.absoluteMask = readMask(object, "absoluteMask");
  Napi::Value rate = object.Get("rate");
  if (rate.IsBigInt()) {
    bool lossless = false;
    table.rate = rate.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless || table.rate < kMinRate || table.rate > kMaxRate) return false;
  } else if (!rate.IsUndefined()) {
    return false;
  }
  Napi::Array list = offsets.As<Napi::Array>();
  if (list.Length() != kClockCount) return false;
  for (uint32_t i = 0; i < kClockCount; ++i) {
    Napi::Value entry = list.Get(i);
    if (!entry.IsBigInt()) return false;
    bool lossless = false;
    table.offsetNs[i] = entry.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) return false;
  }
  return true;
}

Napi::Object modesObject(Napi::Env env, const uint8_t* modes) {
  Napi::Object object = Napi::Object::New(env);
  for (int i = 0; i < kHookCount; ++i) {
    object.Set(kHookNames[i], modes[i] == kSyscall ? "syscall" : "trampoline");
  }
  return object;
}

void setReport(Napi::Object object, const OperationReport& report) {
  object.Set("threads", report.threads);
  object.Set("movedThreads", report.movedThreads);
  object.Set("pauseNs", static_cast<double>(report.pauseNs));
  object.Set("maxThreadPauseNs", static_cast<double>(report.maxThreadPauseNs));
}

Napi::Value restoreResultValue(Napi::Env env, const RestoreResult& result) {
  Napi::Object object = Napi::Object::New(env);
  setReport(object, result.report);
  object.Set("restored", result.restored);
  object.Set("codeRetained", result.codeRetained);
  return object;
}

// Addresses below 2^53 (every user-space address on x86_64) are exact as JavaScript numbers.
Napi::Object locationValue(Napi::Env env, const BlobLocation& location) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("vdsoStart", static_cast<double>(location.vdsoStart));
  object.Set("blobOffset", location.blobOffset);
  object.Set("installerPid", location.installerPid);
  return object;
}

bool readLocation(const Napi::Value& value, BlobLocation& location) {
  if (!value.IsObject()) return false;
  Napi::Object object = value.As<Napi::Object>();
  Napi::Value start = object.Get("vdsoStart");
  Napi::Value offset = object.Get("blobOffset");
  Napi::Value installer = object.Get("installerPid");
  if (!start.IsNumber() || !offset.IsNumber() || !installer.IsNumber()) return false;
  const double address = start.As<Napi::Number>().DoubleValue();
  if (!(address > 0 && address < 9007199254740992.0)) return false;
  location.vdsoStart = static_cast<uint64_t>(address);
  location.blobOffset = offset.As<Napi::Number>().Uint32Value();
  location.installerPid = installer.As<Napi::Number>().Int32Value();
  return location.blobOffset < (1u << 20);
}

// Runs `work` on a libuv worker thread and settles a promise with `convert(result)` or with the
// result's failure.
template <typename Result>
class OperationWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using Convert = std::function<Napi::Value(Napi::Env, const Result&)>;

  OperationWorker(Napi::Env env, pid_t pid, Work work, Convert convert)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        pid_(pid),
        work_(std::move(work)),
        convert_(std::move(convert)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { result_ = work_(); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!result_.status.ok) {
      deferred_.Reject(toJsError(env, result_.status, pid_).Value());
    } else {
      deferred_.Resolve(convert_(env, result_));
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  pid_t pid_;
  Work work_;
  Convert convert_;
  Result result_{};
};

template <typename Result>
Napi::Value schedule(Napi::Env env, pid_t pid, typename OperationWorker<Result>::Work work,
                     typename OperationWorker<Result>::Convert convert) {
  auto* worker = new OperationWorker<Result>(env, pid, std::move(work), std::move(convert));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value Install(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  InstallRequest request;
  if (info.Length() < 1 || !info[0].IsObject()) {
    return rejectWith(env, invalidArgument("install expects a request object"), 0);
  }
  Napi::Object object = info[0].As<Napi::Object>();
  if (!readPid(object.Get("pid"), request.pid)) {
    return rejectWith(env, invalidArgument("pid must be a positive integer"), 0);
  }
  if (!readTable(object, request.table)) {
    return rejectWith(env, invalidArgument("bad clock table"), request.pid);
  }
  request.replace = object.Get("replace").ToBoolean().Value();
  request.forceSyscall = object.Get("forceSyscall").ToBoolean().Value();
  request.installerPid = ::getpid();
  return schedule<InstallResult>(
      env, request.pid,
      [request] { return installIsolated(request); },
      [request](Napi::Env env, const InstallResult& result) -> Napi::Value {
        Napi::Object object = Napi::Object::New(env);
        setReport(object, result.report);
        object.Set("modes", modesObject(env, result.modes));
        if (result.vdsoStart != 0) {
          BlobLocation location;
          location.vdsoStart = result.vdsoStart;
          location.blobOffset = result.blobOffset;
          location.installerPid = request.installerPid;
          object.Set("location", locationValue(env, location));
        }
        return object;
      });
}

Napi::Value Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  ClockTable table;
  if (info.Length() < 2 || !readPid(info[0], pid)) {
    return rejectWith(env, invalidArgument("pid must be a positive integer"), 0);
  }
  if (!info[1].IsObject() || !readTable(info[1].As<Napi::Object>(), table)) {
    return rejectWith(env, invalidArgument("bad clock table"), pid);
  }
  return schedule<UpdateResult>(
      env, pid, [pid, table] { return updateSkew(pid, table); },
      [](Napi::Env env, const UpdateResult&) -> Napi::Value { return env.Undefined(); });
}

// Synchronous: finds the blob once for a handle that did not install it (adopted).
Napi::Value Locate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  if (info.Length() < 1 || !readPid(info[0], pid)) {
    toJsError(env, invalidArgument("pid must be a positive integer"), 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  BlobLocation location;
  Status status = locateBlob(pid, location);
  if (!status.ok) {
    toJsError(env, status, pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return locationValue(env, location);
}

// Synchronous update at a known location. Returns, for tables that keep or anchor clocks (whose
// skew only the published slot knows), the skew of every clock right after publishing; else
// undefined.
Napi::Value UpdateSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  BlobLocation location;
  ClockTable table;
  if (info.Length() < 3 || !readPid(info[0], pid)) {
    toJsError(env, invalidArgument("pid must be a positive integer"), 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!readLocation(info[1], location)) {
    toJsError(env, invalidArgument("bad blob location"), pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!info[2].IsObject() || !readTable(info[2].As<Napi::Object>(), table)) {
    toJsError(env, invalidArgument("bad clock table"), pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ClockSlot published;
  Status status = updateAt(pid, location, table, published);
  if (!status.ok) {
    toJsError(env, status, pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if ((table.keepMask | table.absoluteMask) == 0) return env.Undefined();
  const ClockTable now = describeSlot(published);
  Napi::Array offsets = Napi::Array::New(env, kClockCount);
  for (uint32_t i = 0; i < kClockCount; ++i) offsets.Set(i, Napi::BigInt::New(env, now.offsetNs[i]));
  return offsets;
}

Napi::Value Restore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  if (info.Length() < 1 || !readPid(info[0], pid)) {
    return rejectWith(env, invalidArgument("pid must be a positive integer"), 0);
  }
  return schedule<RestoreResult>(
      env, pid, [pid] { return restoreIsolated(pid); }, restoreResultValue);
}

Napi::Value RestoreSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  if (info.Length() < 1 || !readPid(info[0], pid)) {
    toJsError(env, invalidArgument("pid must be a positive integer"), 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  RestoreResult result = restoreIsolated(pid);
  if (!result.status.ok) {
    toJsError(env, result.status, pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return restoreResultValue(env, result);
}

Napi::Value Inspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  if (info.Length() < 1 || !readPid(info[0], pid)) {
    return rejectWith(env, invalidArgument("pid must be a positive integer"), 0);
  }
  return schedule<InspectResult>(
      env, pid, [pid] { return inspectSkew(pid); },
      [](Napi::Env env, const InspectResult& result) -> Napi::Value {
        if (!result.present) return env.Null();
        Napi::Object object = Napi::Object::New(env);
        char version[sizeof result.header.version + 1] = {};
        std::memcpy(version, result.header.version, sizeof result.header.version);
        object.Set("version", version);
        object.Set("layout", result.header.layout);
        object.Set("installerPid", result.header.installerPid);
        object.Set("active", (result.header.flags & kFlagCodeRetained) == 0);
        object.Set("mask", result.table.mask);
        Napi::Array offsets = Napi::Array::New(env, kClockCount);
        for (uint32_t i = 0; i < kClockCount; ++i) {
          offsets.Set(i, Napi::BigInt::New(env, result.table.offsetNs[i]));
        }
        object.Set("offsetsNs", offsets);
        object.Set("rate", Napi::BigInt::New(env, result.table.rate));
        uint8_t modes[kHookCount];
        for (int i = 0; i < kHookCount; ++i) modes[i] = result.header.entries[i].mode;
        object.Set("modes", modesObject(env, modes));
        return object;
      });
}

Napi::Value PlanImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) {
    toJsError(env, invalidArgument("planImage expects a Uint8Array"), 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Uint8Array image = info[0].As<Napi::Uint8Array>();
  const bool forceSyscall = info.Length() > 1 && info[1].ToBoolean().Value();
  Napi::Object report = Napi::Object::New(env);
  VdsoImage parsed;
  std::string error;
  bool wrongClass = false;
  if (!parsed.parse(image.Data(), image.ByteLength(), error, wrongClass)) {
    report.Set("ok", false);
    report.Set("error", error);
    report.Set("freeBytes", 0);
    report.Set("neededBytes", 0);
    report.Set("functions", Napi::Array::New(env));
    return report;
  }
#if defined(__x86_64__)
  arch::HookPlan plan = arch::planHooks(parsed, forceSyscall);
  report.Set("ok", plan.ok);
  if (!plan.ok) report.Set("error", plan.error);
  report.Set("freeBytes", static_cast<double>(image.ByteLength() - parsed.elfEnd()));
  report.Set("neededBytes", static_cast<double>(plan.neededBytes + (plan.blobOffset - parsed.elfEnd())));
  Napi::Array functions = Napi::Array::New(env);
  for (int i = 0; i < kHookCount && plan.ok; ++i) {
    const arch::FunctionPlan& function = plan.functions[i];
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", kHookNames[i]);
    entry.Set("symbol", function.symbol);
    entry.Set("offset", static_cast<double>(function.functionOffset));
    entry.Set("size", static_cast<double>(function.functionSize));
    entry.Set("patchOffset", function.patchAt);
    entry.Set("displacedLength", function.displacedLength);
    entry.Set("mode", function.mode == kSyscall ? "syscall" : "trampoline");
    if (!function.reason.empty()) entry.Set("reason", function.reason);
    entry.Set("relocations", function.relocations);
    entry.Set("inlined", function.inlined);
    if (!function.inlineReason.empty()) entry.Set("inlineReason", function.inlineReason);
    if (function.inlined) {
      entry.Set("inlineCode", Napi::Buffer<uint8_t>::Copy(env, function.inlineCode, function.inlineLength));
    }
    entry.Set("trampoline", Napi::Buffer<uint8_t>::Copy(env, function.trampoline, function.trampolineLength));
    functions.Set(static_cast<uint32_t>(i), entry);
  }
  report.Set("functions", functions);
#else
  (void)forceSyscall;
  report.Set("ok", false);
  report.Set("error", "unsupported architecture");
  report.Set("freeBytes", 0);
  report.Set("neededBytes", 0);
  report.Set("functions", Napi::Array::New(env));
#endif
  return report;
}

void throwWithCode(Napi::Error error, const char* code) {
  error.Value().Set("code", code);
  error.ThrowAsJavaScriptException();
}

// For tests: an image's call frame rows, to compare with readelf. Chooses register numbers by the
// image's machine, not the build's, so x86_64 images can be checked on any host.
Napi::Value FrameRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throwWithCode(Napi::TypeError::New(env, "frameRows expects a Uint8Array"), "EINVAL");
    return env.Undefined();
  }
  Napi::Uint8Array image = info[0].As<Napi::Uint8Array>();
  VdsoImage parsed;
  FrameTable table;
  std::string error;
  bool wrongClass = false;
  if (!parsed.parse(image.Data(), image.ByteLength(), error, wrongClass)) {
    throwWithCode(Napi::Error::New(env, error), "EINVAL");
    return env.Undefined();
  }
  if (parsed.machine() != ElfMachine::kX86_64) {
    throwWithCode(Napi::Error::New(env, "frameRows knows the registers of x86_64 images only"),
                  "ENOTSUP");
    return env.Undefined();
  }
  if (!table.parse(parsed, x86_64::kDwarfFramePointer, x86_64::kDwarfReturnAddress, error)) {
    throwWithCode(Napi::Error::New(env, error), "EINVAL");
    return env.Undefined();
  }
  Napi::Array rows = Napi::Array::New(env, table.rows().size());
  uint32_t index = 0;
  for (const FrameRow& row : table.rows()) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("start", static_cast<double>(row.start));
    entry.Set("end", static_cast<double>(row.end));
    entry.Set("known", row.rule.known);
    entry.Set("cfaRegister", row.rule.cfaRegister);
    entry.Set("cfaOffset", static_cast<double>(row.rule.cfaOffset));
    if (row.rule.returnSaved) entry.Set("returnOffset", static_cast<double>(row.rule.returnOffset));
    if (row.rule.framePointerSaved) {
      entry.Set("framePointerOffset", static_cast<double>(row.rule.framePointerOffset));
    }
    rows.Set(index++, entry);
  }
  return rows;
}

Napi::Value LaunchStopped(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
    toJsError(env, invalidArgument("launchStopped(file, argv, env)"), 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto strings = [](Napi::Array list) {
    std::vector<std::string> out;
    for (uint32_t i = 0; i < list.Length(); ++i) out.push_back(list.Get(i).ToString().Utf8Value());
    return out;
  };
  LaunchResult result = launchStopped(info[0].As<Napi::String>().Utf8Value(),
                                      strings(info[1].As<Napi::Array>()),
                                      strings(info[2].As<Napi::Array>()));
  if (!result.status.ok) {
    toJsError(env, result.status, 0).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, result.pid);
}

Napi::Value WaitForExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = 0;
  if (info.Length() < 1 || !readPid(info[0], pid)) {
    return rejectWith(env, invalidArgument("pid must be a positive integer"), 0);
  }
  return schedule<ExitResult>(
      env, pid, [pid] { return waitForExit(pid); },
      [](Napi::Env env, const ExitResult& result) -> Napi::Value {
        Napi::Object object = Napi::Object::New(env);
        object.Set("code", result.code < 0 ? env.Null() : Napi::Number::New(env, result.code));
        object.Set("signal", result.signal);
        return object;
      });
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("arch", arch::kName);
  exports.Set("version", TIMESKEW_VERSION);
#if defined(__x86_64__)
  if (!arch::payloadLayoutIsConsistent()) {
    Napi::Error::New(env, "timeskew: payload layout mismatch (build error)").ThrowAsJavaScriptException();
    return exports;
  }
#endif
  exports.Set("install", Napi::Function::New(env, Install));
  exports.Set("update", Napi::Function::New(env, Update));
  exports.Set("locate", Napi::Function::New(env, Locate));
  exports.Set("updateSync", Napi::Function::New(env, UpdateSync));
  exports.Set("restore", Napi::Function::New(env, Restore));
  exports.Set("restoreSync", Napi::Function::New(env, RestoreSync));
  exports.Set("inspect", Napi::Function::New(env, Inspect));
  exports.Set("planImage", Napi::Function::New(env, PlanImage));
  exports.Set("frameRows", Napi::Function::New(env, FrameRows));
  exports.Set("launchStopped", Napi::Function::New(env, LaunchStopped));
  exports.Set("waitForExit", Napi::Function::New(env, WaitForExit));
  return exports;
}

}  // namespace timeskew

static Napi::Object InitTimeskew(Napi::Env env, Napi::Object exports) {
  return timeskew::Init(env, exports);
}

NODE_API_MODULE(timeskew, InitTimeskew)
