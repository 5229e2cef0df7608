#include "proc.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "unique_fd.h"

namespace timeskew {

bool readSmallFile(const std::string& path, std::string& out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  out.clear();
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    out.append(buffer, static_cast<size_t>(n));
  }
}

bool readProcessInfo(pid_t pid, ProcessInfo& info) {
  std::string text;
  if (!readSmallFile("/proc/" + std::to_string(pid) + "/stat", text)) return false;
  // The command name may contain spaces and parentheses: fields start after the LAST ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) {
    errno = EIO;
    return false;
  }
  const char* fields = text.c_str() + close + 2;
  info.state = fields[0];
  char* cursor = nullptr;
  info.ppid = static_cast<pid_t>(std::strtol(fields + 1, &cursor, 10));
  // Skip pgrp, session, tty_nr, tpgid to reach flags (field 9).
  for (int i = 0; i < 4 && cursor; ++i) std::strtol(cursor, &cursor, 10);
  info.flags = cursor ? static_cast<unsigned>(std::strtoul(cursor, nullptr, 10)) : 0;
  return true;
}

pid_t readTracer(pid_t pid, pid_t tid) {
  std::string text;
  if (!readSmallFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status",
                     text)) {
    return -1;
  }
  size_t at = text.find("TracerPid:");
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::strtol(text.c_str() + at + 10, nullptr, 10));
}

namespace {
std::string taskPath(pid_t pid, pid_t tid, const char* file) {
  return "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/" + file;
}

uint64_t parseHexMask(const std::string& text, const char* key) {
  const size_t at = text.find(key);
  if (at == std::string::npos) return 0;
  return std::strtoull(text.c_str() + at + std::strlen(key), nullptr, 16);
}
}  // namespace

char readThreadState(pid_t pid, pid_t tid) {
  std::string text;
  if (!readSmallFile(taskPath(pid, tid, "stat"), text)) return '?';
  const size_t close = text.rfind(')');
  if (close == std::string::npos || close + 2 >= text.size()) return '?';
  return text[close + 2];
}

pid_t findLiveThread(pid_t pid) {
  std::vector<pid_t> tids;
  if (!listThreads(pid, tids)) return 0;
  for (pid_t tid : tids) {
    const char state = readThreadState(pid, tid);
    if (state != '?' && state != 'Z' && state != 'X') return tid;
  }
  return 0;
}

bool hasDeliverableSignal(pid_t pid, pid_t tid) {
  std::string text;
  if (!readSmallFile(taskPath(pid, tid, "status"), text)) return false;
  const uint64_t pending = parseHexMask(text, "SigPnd:") | parseHexMask(text, "ShdPnd:");
  return (pending & ~parseHexMask(text, "SigBlk:")) != 0;
}

bool readThreadRuntimeNs(pid_t pid, pid_t tid, uint64_t& ns) {
  std::string text;
  if (!readSmallFile(taskPath(pid, tid, "schedstat"), text) || text.empty()) return false;
  ns = std::strtoull(text.c_str(), nullptr, 10);
  return true;
}

bool listThreads(pid_t pid, std::vector<pid_t>& tids) {
  // getdents on the task directory: opendir would allocate a DIR per call for no gain here.
  UniqueFd dir(::open(("/proc/" + std::to_string(pid) + "/task").c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return false;
  tids.clear();
  alignas(8) char buffer[8192];
  for (;;) {
    long n = ::syscall(SYS_getdents64, dir.get(), buffer, sizeof buffer);
    if (n < 0) return false;
    if (n == 0) return true;
    for (long at = 0; at < n;) {
      struct Entry {
        uint64_t inode;
        int64_t offset;
        unsigned short length;
        unsigned char type;
        char name[1];
      };
      const Entry* entry = reinterpret_cast<const Entry*>(buffer + at);
      if (entry->name[0] >= '0' && entry->name[0] <= '9') {
        tids.push_back(static_cast<pid_t>(std::strtol(entry->name, nullptr, 10)));
      }
      at += entry->length;
    }
  }
}

bool findVdsoMapping(pid_t pid, AddressRange& range, int& error) {
  std::string text;
  if (!readSmallFile("/proc/" + std::to_string(pid) + "/maps", text)) {
    error = errno;
    return false;
  }
  size_t at = text.find("[vdso]");
  if (at == std::string::npos) {
    error = 0;
    return false;
  }
  size_t lineStart = text.rfind('\n', at);
  lineStart = lineStart == std::string::npos ? 0 : lineStart + 1;
  char* cursor = nullptr;
  range.start = std::strtoull(text.c_str() + lineStart, &cursor, 16);
  range.end = std::strtoull(cursor + 1, nullptr, 16);
  error = 0;
  return range.end > range.start;
}

}  // namespace timeskew
