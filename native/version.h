#pragma once
// Recorded in every target's header; test/version.test.ts keeps it equal to package.json.
#define TIMESKEW_VERSION "0.1.0"
