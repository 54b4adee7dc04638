/*
 * Node-API surface of the UDP engine (udp.h). An engine per call of udpCreate, held
 * by an External; every call returns 0, a count, or -errno.
 *
 *   udpCreate(maxFlows, maxSockets, decisions: Uint32Array, events: Float64Array,
 *             onDecide(n), onEvents(n), threaded?) -> engine | -errno
 *       threaded: the engine runs on a thread of its own, listeners SO_REUSEPORT (one
 *       engine per data-plane thread, each binding the same ports); hooks still run on
 *       the JS thread, handed off through uv_async while the engine waits.
 *       decisions: UDP_DECIDE_MAX x 9 uint32 (struct udp_decision), events:
 *       UDP_EVENT_MAX x 8 doubles (struct udp_event); both stay owned by JS and are
 *       read and written in place. The hooks run synchronously on the JS thread.
 *   udpListen(engine, lid, ip, port, idleMs)    -> 0 | -errno
 *   udpUnlisten(engine, lid)                    -> 0 | -errno   (CLOSED events first)
 *   udpCloseTag(engine, lid, tag)               -> flows closed | -errno
 *   udpFlows(engine, lid)                       -> Float64Array (UDP_FLOW_FIELDS per flow) | -errno
 *   udpStats(engine)                            -> { flows, sockets, earlyDrop, ... }
 *   udpDestroy(engine)                          -> 0 (sockets closed once libuv lets go)
 *   udpConst                                    -> sizes, event types and close reasons
 *
 * Unthreaded, the engine's epoll fd is polled on Node's loop (uv_poll).
 */
#define _GNU_SOURCE /* pthread_setname_np */
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addon_udp.h"
#include "napi_util.h"
#include "sched_slice.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include "udp.h"


/* Fields per record, as the TypeScript side reads them (src/mesh/udp-engine.ts). */
#define DECISION_FIELDS 9
#define EVENT_FIELDS 8
#define FLOW_FIELDS 7
/* Idle expiry runs this often. */
#define TICK_MS 100
/* Receive coalescing, as a NIC's interrupt moderation (ethtool rx-usecs): after a pass
 * that moved at least COALESCE_MIN datagrams, the engine's fd is left unpolled for
 * COALESCE_US (a timerfd is polled instead) and what arrives meanwhile waits in the
 * socket buffers (a listener's is 4 MiB) for the next pass. Under load a pass then
 * takes ~3 x the datagrams, so passes, syscalls and wake-ups per datagram fall, and on
 * a shared core the task we just sent to gets the CPU to read it instead of being
 * preempted by the next pass. A pass of fewer datagrams (light traffic, a lone request)
 * is never followed by a pause: the pause only ever delays datagrams that arrive while
 * the engine is busy, by at most COALESCE_US. Measured in docs/bench.md (UDP section):
 * the agent's CPU per 64-byte datagram 3.9 -> 2.7 us, pkt/s 0.66 -> 0.86 x direct. */
#define COALESCE_US 200
#define COALESCE_MIN 8

struct udp_addon {
  napi_env env;
  napi_ref on_decide, on_events, decisions, events;
  napi_async_context async;
  uv_poll_t poll;
  uv_timer_t timer;
  uv_poll_t pause;       /* the coalescing timerfd, polled while the engine's fd is not */
  int pause_fd;          /* -1: none (coalescing off) */
  uint64_t moved;        /* datagrams in and out at the end of the last pass */
  struct udp_engine *e;
  int handles; /* libuv handles not yet closed */
  int destroyed;
  int held; /* the External still points here: it frees this, not the close callback */
  /* Inside a libuv callback (on_poll, on_timer), and the scopes JS runs in there, opened
   * only when a hook first calls into JS: most passes move datagrams of known flows and
   * call no JS, and a scope per pass (a handle scope, a resource object, a callback scope
   * whose close checks for ticks) cost ~10 % of a one-flow packet stream with the
   * garbage collector's share. */
  int in_pass, scoped;
  napi_handle_scope pass_hs;
  napi_callback_scope pass_cs;
  /* Threaded (udpCreate's 7th argument): the engine runs on a data-plane thread of its
   * own (epoll loop, idle ticks, coalescing), its listeners bound with SO_REUSEPORT
   * beside the other threads' engines. A hook there hands off to the JS thread (uv_async)
   * and waits, the engine paused mid-pass, until JS has answered; a call from JS takes
   * the engine between passes (serving a pending hook first, so neither side waits for
   * the other). mu guards the engine; cv signals every change of busy and pending. */
  int threaded;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uv_async_t wake_js;
  int wake_fd; /* eventfd: stop the thread */
  int ep;      /* the thread's epoll: the engine's fd and wake_fd */
  int stop, busy, pending;
  unsigned pending_n;
  int serving, on_js; /* the JS thread is in a hook / in a call of this engine */
  struct udp_decision *dec;
};

static int open_pass_scope(struct udp_addon *a);

/* A hook into JS. The TypeScript side catches its own errors; one that escapes is
 * cleared so a bug in a handler cannot stop the data path (decisions left at 0 drop
 * their flows). */

static void call_js(struct udp_addon *a, napi_ref ref, unsigned n) {
  napi_env env = a->env;
  napi_handle_scope scope;
  if (a->in_pass && !a->scoped && open_pass_scope(a) < 0) return;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, undef, argv[1];
  napi_get_reference_value(env, ref, &cb);
  napi_get_undefined(env, &undef);
  napi_create_uint32(env, n, &argv[0]);
  if (napi_call_function(env, undef, cb, 1, argv, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
  }
  napi_close_handle_scope(env, scope);
}

enum { PENDING_DECIDE = 1, PENDING_EVENTS = 2 };

/* On the engine's thread, mu held: the JS thread answers the hook, meanwhile mu is free. */
static void hand_off(struct udp_addon *a, int kind, unsigned n) {
  if (kind == PENDING_DECIDE)
    for (unsigned i = 0; i < n; i++) a->dec[i].tag = 0; /* unanswered (stopping): dropped */
  if (a->stop) return;
  a->pending = kind;
  a->pending_n = n;
  pthread_cond_broadcast(&a->cv);
  uv_async_send(&a->wake_js);
  while (a->pending && !a->stop) pthread_cond_wait(&a->cv, &a->mu);
  a->pending = 0;
}

static void hook_decide(void *ctx, unsigned n) {
  struct udp_addon *a = ctx;
  if (a->threaded && !a->on_js) hand_off(a, PENDING_DECIDE, n);
  else call_js(a, a->on_decide, n);
}

static void hook_events(void *ctx, unsigned n) {
  struct udp_addon *a = ctx;
  if (a->threaded && !a->on_js) hand_off(a, PENDING_EVENTS, n);
  else call_js(a, a->on_events, n);
}

/* On the JS thread, mu held: runs the hook the engine's thread waits on. */
static void serve(struct udp_addon *a) {
  a->serving = 1;
  call_js(a, a->pending == PENDING_DECIDE ? a->on_decide : a->on_events, a->pending_n);
  a->serving = 0;
  a->pending = 0;
  pthread_cond_broadcast(&a->cv);
}

/* A call from JS takes a threaded engine between passes; -EBUSY from inside its own
 * hook (as the engine answers on one thread). */
static int enter(struct udp_addon *a) {
  if (!a->threaded) return 0;
  if (a->serving || a->on_js) return -EBUSY;
  pthread_mutex_lock(&a->mu);
  while (a->busy) {
    if (a->pending) serve(a);
    else pthread_cond_wait(&a->cv, &a->mu);
  }
  a->on_js = 1;
  return 0;
}

static void leave(struct udp_addon *a) {
  if (!a->threaded) return;
  a->on_js = 0;
  pthread_mutex_unlock(&a->mu);
}

/* As libuv callbacks run JS: in a callback scope, so promise jobs run when it closes
 * (at the end of the pass, once the engine is out of its hooks). */
static int open_pass_scope(struct udp_addon *a) {
  napi_value resource;
  if (napi_open_handle_scope(a->env, &a->pass_hs) != napi_ok) return -1;
  if (napi_create_object(a->env, &resource) != napi_ok || napi_open_callback_scope(a->env, resource, a->async, &a->pass_cs) != napi_ok) {
    napi_close_handle_scope(a->env, a->pass_hs);
    return -1;
  }
  a->scoped = 1;
  return 0;
}

static void close_pass_scope(struct udp_addon *a) {
  if (!a->scoped) return;
  a->scoped = 0;
  napi_close_callback_scope(a->env, a->pass_cs);
  napi_close_handle_scope(a->env, a->pass_hs);
}

static void in_pass(struct udp_addon *a, void (*fn)(struct udp_engine *)) {
  a->in_pass = 1;
  fn(a->e);
  a->in_pass = 0;
  close_pass_scope(a);
}

static void on_pause_end(uv_poll_t *h, int status, int events);
static void on_handle_closed(uv_handle_t *h);

/* After a pass: whether it moved (took in and sent out) COALESCE_MIN datagrams or more
 * since the last call, so a pause follows (COALESCE_*). */
static int busy_pass(struct udp_addon *a) {
  uint64_t st[UDP_S_COUNT];
  udp_stats(a->e, st);
  uint64_t now = st[UDP_S_RX_PACKETS] + st[UDP_S_TX_PACKETS], n = now - a->moved;
  a->moved = now;
  return n >= COALESCE_MIN;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct udp_addon *a = h->data;
  if (a->destroyed) return;
  in_pass(a, udp_process);
  if (a->pause_fd < 0 || a->destroyed || !busy_pass(a)) return;
  struct itimerspec its = {.it_value = {.tv_nsec = COALESCE_US * 1000L}};
  if (timerfd_settime(a->pause_fd, 0, &its, NULL) < 0) return;
  uv_poll_stop(&a->poll);
  uv_poll_start(&a->pause, UV_READABLE, on_pause_end);
}

/* The pause is over: poll the engine again and take what waited (its fd is level
 * triggered, so nothing that arrived meanwhile is missed). */
static void on_pause_end(uv_poll_t *h, int status, int events) {
  struct udp_addon *a = h->data;
  uint64_t expirations;
  if (read(a->pause_fd, &expirations, sizeof expirations) < 0) { /* EAGAIN: nothing to clear */
  }
  uv_poll_stop(&a->pause);
  if (a->destroyed) return;
  uv_poll_start(&a->poll, UV_READABLE, on_poll);
  on_poll(&a->poll, 0, UV_READABLE);
}

static void on_timer(uv_timer_t *h) {
  struct udp_addon *a = h->data;
  if (!a->destroyed) in_pass(a, udp_tick);
}

/* The engine's thread waits on a hook: answer it (promise jobs run once mu is free). */
static void on_wake_js(uv_async_t *h) {
  struct udp_addon *a = h->data;
  if (a->destroyed || a->serving || a->on_js) return;
  pthread_mutex_lock(&a->mu);
  a->in_pass = 1;
  if (a->pending) serve(a);
  a->in_pass = 0;
  pthread_mutex_unlock(&a->mu);
  close_pass_scope(a);
}

/* A data-plane thread: the loop on_poll, on_pause_end and on_timer make on Node's loop,
 * with the coalescing pause as a sleep (the thread has nothing else to do meanwhile). */
static void *engine_thread(void *arg) {
  struct udp_addon *a = arg;
  pthread_setname_np(pthread_self(), "swarmnet-udp"); /* as ps -L and /proc/PID/task/TID/comm show it */
  sched_slice_apply(); /* woken by every datagram batch: due soon after (sched_slice.h) */
  int64_t next_tick = udp_now_ms() + TICK_MS;
  for (;;) {
    int64_t wait = next_tick - udp_now_ms();
    struct epoll_event ev[2];
    int n = epoll_wait(a->ep, ev, 2, wait < 0 ? 0 : (int)wait), ready = 0;
    for (int i = 0; i < n; i++) ready |= ev[i].data.u32 == 1;
    pthread_mutex_lock(&a->mu);
    if (a->stop) {
      pthread_mutex_unlock(&a->mu);
      break;
    }
    a->busy = 1;
    if (ready) udp_process(a->e);
    if (udp_now_ms() >= next_tick) {
      udp_tick(a->e);
      next_tick = udp_now_ms() + TICK_MS;
    }
    int pause = busy_pass(a) && ready;
    a->busy = 0;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (pause) {
      struct timespec ts = {.tv_nsec = COALESCE_US * 1000L};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

static void stop_thread(struct udp_addon *a) {
  uint64_t one = 1;
  pthread_mutex_lock(&a->mu);
  a->stop = 1;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (write(a->wake_fd, &one, sizeof one) < 0) { /* the stop flag is read after any wake-up */
  }
  pthread_join(a->thread, NULL);
  close(a->ep);
  close(a->wake_fd);
}

/* Threaded: epoll and wake-up for the thread, the hand-off to JS, then the thread. */
static int start_thread(struct udp_addon *a, uv_loop_t *loop) {
  a->ep = epoll_create1(EPOLL_CLOEXEC);
  a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ee = {.events = EPOLLIN, .data.u32 = 1}, we = {.events = EPOLLIN, .data.u32 = 2};
  int rc = a->ep < 0 || a->wake_fd < 0 ? -errno : 0;
  if (rc == 0 && (epoll_ctl(a->ep, EPOLL_CTL_ADD, udp_fd(a->e), &ee) < 0 || epoll_ctl(a->ep, EPOLL_CTL_ADD, a->wake_fd, &we) < 0)) rc = -errno;
  if (rc == 0) rc = uv_async_init(loop, &a->wake_js, on_wake_js);
  if (rc == 0) {
    a->wake_js.data = a;
    a->handles++;
    uv_unref((uv_handle_t *)&a->wake_js);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    rc = -pthread_create(&a->thread, NULL, engine_thread, a);
    if (rc == 0) return 0;
    a->destroyed = 1;
    a->threaded = 0; /* no thread to stop */
    uv_close((uv_handle_t *)&a->wake_js, on_handle_closed);
    return rc;
  }
  if (a->ep >= 0) close(a->ep);
  if (a->wake_fd >= 0) close(a->wake_fd);
  return rc;
}

static void on_handle_closed(uv_handle_t *h) {
  struct udp_addon *a = h->data;
  if (--a->handles > 0) return;
  udp_destroy(a->e);
  if (a->threaded) {
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
  }
  if (a->pause_fd >= 0) close(a->pause_fd);
  napi_delete_reference(a->env, a->on_decide);
  napi_delete_reference(a->env, a->on_events);
  napi_delete_reference(a->env, a->decisions);
  napi_delete_reference(a->env, a->events);
  napi_async_destroy(a->env, a->async);
  a->e = NULL;
  if (!a->held) free(a);
}

static void destroy(struct udp_addon *a) {
  if (a->destroyed) return;
  a->destroyed = 1;
  if (a->threaded) {
    stop_thread(a);
    uv_close((uv_handle_t *)&a->wake_js, on_handle_closed);
    return;
  }
  uv_poll_stop(&a->poll);
  uv_timer_stop(&a->timer);
  uv_close((uv_handle_t *)&a->poll, on_handle_closed);
  uv_close((uv_handle_t *)&a->timer, on_handle_closed);
  if (a->pause_fd >= 0) {
    uv_poll_stop(&a->pause);
    uv_close((uv_handle_t *)&a->pause, on_handle_closed);
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  struct udp_addon *a = data;
  a->held = 0;
  if (a->destroyed && a->handles == 0) free(a);
  else destroy(a);
}

/* A typed array of `type` with at least `min` elements; its memory, or NULL. */
static void *typed(napi_env env, napi_value v, napi_typedarray_type want, size_t min) {
  bool is = false;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value ab;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) return NULL;
  return type == want && length >= min ? data : NULL;
}

static struct udp_addon *engine_of(napi_env env, napi_value v) {
  struct udp_addon *a = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_get_value_external(env, v, (void **)&a) != napi_ok || !a || a->destroyed) return NULL;
  return a;
}

static napi_value udp_create_js(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], ext, name;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return ret_int(env, -EINVAL);
  uint32_t max_flows, max_sockets;
  NAPI_CHECK(napi_get_value_uint32(env, argv[0], &max_flows));
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &max_sockets));
  struct udp_decision *dec = typed(env, argv[2], napi_uint32_array, (size_t)UDP_DECIDE_MAX * DECISION_FIELDS);
  struct udp_event *ev = typed(env, argv[3], napi_float64_array, (size_t)UDP_EVENT_MAX * EVENT_FIELDS);
  if (!dec || !ev) return ret_int(env, -EINVAL);
  struct udp_addon *a = calloc(1, sizeof *a);
  if (!a) return ret_int(env, -ENOMEM);
  a->env = env;
  a->pause_fd = -1;
  a->dec = dec;
  bool threaded = false;
  if (argc >= 7) napi_get_value_bool(env, argv[6], &threaded);
  a->threaded = threaded;
  struct udp_config cfg = {.max_flows = max_flows, .max_sockets = max_sockets, .reuseport = threaded};
  struct udp_hooks hooks = {.decide = hook_decide, .events = hook_events, .ctx = a, .dec = dec, .ev = ev};
  int rc = udp_create(&cfg, &hooks, &a->e);
  if (rc < 0) {
    free(a);
    return ret_int(env, rc);
  }
  uv_loop_t *loop;
  NAPI_CHECK(napi_get_uv_event_loop(env, &loop));
  NAPI_CHECK(napi_create_reference(env, argv[2], 1, &a->decisions));
  NAPI_CHECK(napi_create_reference(env, argv[3], 1, &a->events));
  NAPI_CHECK(napi_create_reference(env, argv[4], 1, &a->on_decide));
  NAPI_CHECK(napi_create_reference(env, argv[5], 1, &a->on_events));
  NAPI_CHECK(napi_create_string_utf8(env, "swarmnet-udp", NAPI_AUTO_LENGTH, &name));
  NAPI_CHECK(napi_async_init(env, NULL, name, &a->async));
  if (a->threaded) {
    rc = start_thread(a, loop);
    if (rc < 0) {
      if (!a->destroyed) {
        udp_destroy(a->e);
        free(a);
      }
      return ret_int(env, rc);
    }
    NAPI_CHECK(napi_create_external(env, a, finalize, NULL, &ext));
    a->held = 1;
    return ext;
  }
  a->poll.data = a->timer.data = a;
  rc = uv_poll_init(loop, &a->poll, udp_fd(a->e));
  if (rc == 0) {
    a->handles++;
    rc = uv_timer_init(loop, &a->timer);
  }
  if (rc == 0) {
    a->handles++;
    rc = uv_poll_start(&a->poll, UV_READABLE, on_poll);
  }
  if (rc == 0) rc = uv_timer_start(&a->timer, on_timer, TICK_MS, TICK_MS);
  if (rc != 0) {
    if (a->handles) {
      a->destroyed = 1;
      uv_close((uv_handle_t *)&a->poll, on_handle_closed);
      if (a->handles > 1) uv_close((uv_handle_t *)&a->timer, on_handle_closed);
    } else {
      udp_destroy(a->e);
      free(a);
    }
    return ret_int(env, rc); /* libuv errors are -errno */
  }
  /* The mesh keeps the process alive through its owner; the engine must not. */
  uv_unref((uv_handle_t *)&a->poll);
  uv_unref((uv_handle_t *)&a->timer);
  /* Without a timerfd the engine runs uncoalesced. */
  int pfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  a->pause.data = a;
  if (pfd >= 0 && uv_poll_init(loop, &a->pause, pfd) == 0) {
    a->pause_fd = pfd;
    a->handles++;
    uv_unref((uv_handle_t *)&a->pause);
  } else if (pfd >= 0) {
    close(pfd);
  }
  NAPI_CHECK(napi_create_external(env, a, finalize, NULL, &ext));
  a->held = 1;
  return ext;
}

static napi_value udp_listen_js(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint32_t lid, ip, idle;
  int32_t port;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 5 ? engine_of(env, argv[0]) : NULL;
  if (!a) return ret_int(env, -EBADF);
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &lid));
  if (get_ip(env, argv[2], &ip) < 0) return ret_int(env, -EINVAL);
  NAPI_CHECK(napi_get_value_int32(env, argv[3], &port));
  NAPI_CHECK(napi_get_value_uint32(env, argv[4], &idle));
  if (port < 0 || port > 65535) return ret_int(env, -EINVAL);
  int rc = enter(a);
  if (rc == 0) {
    rc = udp_listen(a->e, lid, ip, (uint16_t)port, idle);
    leave(a);
  }
  return ret_int(env, rc);
}

static napi_value udp_unlisten_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t lid;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 2 ? engine_of(env, argv[0]) : NULL;
  if (!a) return ret_int(env, -EBADF);
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &lid));
  int rc = enter(a);
  if (rc == 0) {
    rc = udp_unlisten(a->e, lid);
    leave(a);
  }
  return ret_int(env, rc);
}

static napi_value udp_close_tag_js(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t lid, tag;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 3 ? engine_of(env, argv[0]) : NULL;
  if (!a) return ret_int(env, -EBADF);
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &lid));
  NAPI_CHECK(napi_get_value_uint32(env, argv[2], &tag));
  int rc = enter(a);
  if (rc == 0) {
    rc = udp_close_tag(a->e, lid, tag);
    leave(a);
  }
  return ret_int(env, rc);
}

struct flow_fill {
  double *out;
  size_t i, cap;
};

static void count_flow(void *ctx, const struct udp_flow_info *f) {
  ((struct flow_fill *)ctx)->cap += FLOW_FIELDS;
}

static void fill_flow(void *ctx, const struct udp_flow_info *f) {
  struct flow_fill *w = ctx;
  if (w->i + FLOW_FIELDS > w->cap) return;
  double *o = w->out + w->i;
  o[0] = f->client_ip;
  o[1] = f->client_port;
  o[2] = f->tag;
  o[3] = (double)f->idle_ms;
  o[4] = (double)f->bytes_in;
  o[5] = (double)f->bytes_out;
  o[6] = f->answered;
  w->i += FLOW_FIELDS;
}

static napi_value udp_flows_js(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ab, out;
  uint32_t lid;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 2 ? engine_of(env, argv[0]) : NULL;
  if (!a) return ret_int(env, -EBADF);
  NAPI_CHECK(napi_get_value_uint32(env, argv[1], &lid));
  struct flow_fill w = {0};
  int n = enter(a);
  if (n < 0) return ret_int(env, n);
  n = udp_flows(a->e, lid, count_flow, &w);
  void *data = NULL;
  if (n >= 0 && napi_create_arraybuffer(env, w.cap * sizeof(double), &data, &ab) != napi_ok) n = -ENOMEM;
  w.out = data;
  if (n >= 0) udp_flows(a->e, lid, fill_flow, &w);
  leave(a);
  if (n < 0) return ret_int(env, n);
  NAPI_CHECK(napi_create_typedarray(env, napi_float64_array, w.i, ab, 0, &out));
  return out;
}

static napi_value udp_stats_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 1 ? engine_of(env, argv[0]) : NULL;
  if (!a) return ret_int(env, -EBADF);
  uint64_t s[UDP_S_COUNT];
  int rc = enter(a);
  if (rc < 0) return ret_int(env, rc);
  udp_stats(a->e, s);
  leave(a);
  NAPI_CHECK(napi_create_object(env, &out));
  for (int i = 0; i < UDP_S_COUNT; i++) {
    napi_create_double(env, (double)s[i], &v);
    napi_set_named_property(env, out, udp_stat_names[i], v);
  }
  return out;
}

static napi_value udp_destroy_js(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct udp_addon *a = argc == 1 ? engine_of(env, argv[0]) : NULL;
  if (a && (a->serving || a->on_js)) return ret_int(env, -EBUSY); /* from its own hook */
  if (a) destroy(a);
  return ret_int(env, 0);
}

static napi_status set_int(napi_env env, napi_value obj, const char *name, int v) {
  napi_value n;
  napi_status s = napi_create_int32(env, v, &n);
  return s == napi_ok ? napi_set_named_property(env, obj, name, n) : s;
}

/* The one place TypeScript learns the record sizes, event types and reasons from. */
static napi_status constants(napi_env env, napi_value exports) {
  napi_value c;
  napi_status s = napi_create_object(env, &c);
  static const struct {
    const char *name;
    int value;
  } table[] = {
      {"decideMax", UDP_DECIDE_MAX}, {"eventMax", UDP_EVENT_MAX},     {"decisionFields", DECISION_FIELDS},
      {"eventFields", EVENT_FIELDS}, {"flowFields", FLOW_FIELDS},     {"evClosed", UDP_EV_CLOSED},
      {"evFailed", UDP_EV_FAILED},   {"evAnswered", UDP_EV_ANSWERED},   {"rIdle", UDP_R_IDLE},           {"rEarlyDrop", UDP_R_EARLY_DROP},
      {"rNoPort", UDP_R_NO_PORT},    {"rNoBackend", UDP_R_NO_BACKEND}, {"rClosed", UDP_R_CLOSED},
  };
  for (size_t i = 0; s == napi_ok && i < sizeof table / sizeof table[0]; i++) s = set_int(env, c, table[i].name, table[i].value);
  return s == napi_ok ? napi_set_named_property(env, exports, "udpConst", c) : s;
}

napi_status udp_register(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"udpCreate", NULL, udp_create_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpListen", NULL, udp_listen_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpUnlisten", NULL, udp_unlisten_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpCloseTag", NULL, udp_close_tag_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpFlows", NULL, udp_flows_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpStats", NULL, udp_stats_js, NULL, NULL, NULL, napi_default, NULL},
      {"udpDestroy", NULL, udp_destroy_js, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_status s = napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return s == napi_ok ? constants(env, exports) : s;
}
