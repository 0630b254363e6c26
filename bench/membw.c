// membw.c - memory read bandwidth with a given number of threads.
//
//   cc -O3 -march=native -pthread bench/membw.c -o membw
//   ./membw [--threads 2] [--mib 1024] [--passes 10]
//
// Each thread first touches its own contiguous slice of one array (so pages
// land near it), then every pass all threads sum their slices at once, between
// two barriers; the main thread times from the first barrier to the last
// thread's arrival. Prints one JSON line on stdout:
//   {"threads":T,"bytes":B,"passes":P,"best_gb_s":X,"median_gb_s":Y}
// GB = 1e9 bytes. The array is far larger than any cache, so this is the rate
// at which DRAM feeds T cores streaming reads: what a bandwidth-bound LLM
// decode (every weight read once per token) can at best reach.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const uint64_t *data;
  size_t n;
  int passes;
  pthread_barrier_t *barrier;
  uint64_t sink;
} Worker;

static uint64_t *g_array;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t sum(const uint64_t *restrict p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i++) s += p[i];
  return s;
}

static void *worker_main(void *arg) {
  Worker *w = arg;
  uint64_t *mine = (uint64_t *)w->data;
  for (size_t i = 0; i < w->n; i++) mine[i] = i;  // first touch by the reader
  pthread_barrier_wait(w->barrier);                 // initialised
  for (int p = 0; p < w->passes; p++) {
    pthread_barrier_wait(w->barrier);  // start
    w->sink += sum(w->data, w->n);
    pthread_barrier_wait(w->barrier);  // done
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  int threads = 2, passes = 10;
  long mib = 1024;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--mib")) mib = atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--passes")) passes = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: membw [--threads N] [--mib M] [--passes P]\n");
      return 1;
    }
  }
  if (threads < 1 || threads > 1024 || mib < 1 || passes < 1) {
    fprintf(stderr, "membw: bad arguments\n");
    return 1;
  }
  size_t total = (size_t)mib << 17;  // uint64 elements
  size_t per = total / (size_t)threads;
  total = per * (size_t)threads;
  if (posix_memalign((void **)&g_array, 4096, total * sizeof(uint64_t))) {
    fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
    return 1;
  }
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, (unsigned)threads + 1);
  Worker *ws = calloc((size_t)threads, sizeof(Worker));
  pthread_t *tids = calloc((size_t)threads, sizeof(pthread_t));
  double *secs = calloc((size_t)passes, sizeof(double));
  for (int t = 0; t < threads; t++) {
    ws[t] = (Worker){g_array + (size_t)t * per, per, passes, &barrier, 0};
    pthread_create(&tids[t], NULL, worker_main, &ws[t]);
  }
  pthread_barrier_wait(&barrier);
  for (int p = 0; p < passes; p++) {
    pthread_barrier_wait(&barrier);
    double t0 = now_s();
    pthread_barrier_wait(&barrier);
    secs[p] = now_s() - t0;
  }
  uint64_t sink = 0;
  for (int t = 0; t < threads; t++) {
    pthread_join(tids[t], NULL);
    sink += ws[t].sink;
  }
  qsort(secs, (size_t)passes, sizeof(double), cmp_double);
  double bytes = (double)total * sizeof(uint64_t);
  double med = passes % 2 ? secs[passes / 2] : 0.5 * (secs[passes / 2 - 1] + secs[passes / 2]);
  printf("{\"threads\":%d,\"bytes\":%.0f,\"passes\":%d,\"best_gb_s\":%.2f,\"median_gb_s\":%.2f,\"sink\":%llu}\n",
         threads, bytes, passes, bytes / secs[0] / 1e9, bytes / med / 1e9, (unsigned long long)(sink & 0xff));
  free(secs);
  free(tids);
  free(ws);
  free(g_array);
  return 0;
}
