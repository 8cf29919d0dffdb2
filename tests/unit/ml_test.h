/* A small test harness for moonloop's C unit tests.
 * Each test is a function registered with ML_TEST; main() comes from ML_TEST_MAIN().
 * A failed check prints file:line and the expression, and marks the test failed.
 * The run closes with "N passed, N failed" so CI can read the result. */
#ifndef ML_TEST_H
#define ML_TEST_H

#include <stdio.h>
#include <string.h>

struct ml_test_case {
  const char *name;
  void (*fn)(void);
};

extern int ml_test_failed_checks;

#define ML_CHECK(cond)                                                          \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ml_test_failed_checks++;                                                  \
    }                                                                           \
  } while (0)

#define ML_CHECK_INT(a, b)                                                      \
  do {                                                                          \
    long long ml_a_ = (long long)(a), ml_b_ = (long long)(b);                   \
    if (ml_a_ != ml_b_) {                                                       \
      fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, \
              #a, ml_a_, ml_b_);                                                \
      ml_test_failed_checks++;                                                  \
    }                                                                           \
  } while (0)

#define ML_CHECK_STR(a, b)                                                      \
  do {                                                                          \
    const char *ml_a_ = (a), *ml_b_ = (b);                                      \
    if (ml_a_ == NULL || ml_b_ == NULL || strcmp(ml_a_, ml_b_) != 0) {          \
      fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,     \
              __LINE__, #a, ml_a_ ? ml_a_ : "(null)", ml_b_ ? ml_b_ : "(null)"); \
      ml_test_failed_checks++;                                                  \
    }                                                                           \
  } while (0)

#define ML_TEST_MAIN(...)                                                       \
  int ml_test_failed_checks = 0;                                                \
  int main(void) {                                                              \
    static const struct ml_test_case cases[] = {__VA_ARGS__};                   \
    int passed = 0, failed = 0;                                                 \
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {               \
      int before = ml_test_failed_checks;                                       \
      cases[i].fn();                                                            \
      if (ml_test_failed_checks == before) {                                    \
        passed++;                                                               \
        printf("ok   %s\n", cases[i].name);                                     \
      } else {                                                                  \
        failed++;                                                               \
        printf("FAIL %s\n", cases[i].name);                                     \
      }                                                                         \
    }                                                                           \
    printf("%d passed, %d failed\n", passed, failed);                           \
    return failed ? 1 : 0;                                                      \
  }

#define ML_CASE(fn) { #fn, fn }

#endif
