/* loop.c - see loop.h.
 *
 * One epoll instance, level-triggered. The post queue's eventfd and the
 * signalfd are ordinary loop_io sources with internal callbacks.
 *
 * Deletion during dispatch: loop_io_del() removes the fd from epoll at once
 * but only marks the handle dead; the handle is freed at the end of the
 * iteration, so the rest of the current epoll batch (which may still point at
 * it) finds it dead and skips it. Timers are popped from the heap one at a
 * time, so cancelling another timer only removes it from the heap and can
 * free it at once.
 *
 * Posts: producers append to `posts` under the mutex and write the eventfd
 * only when the queue goes from empty to non-empty. The loop thread reads the
 * eventfd first and then swaps `posts` with its spare array, so a post that
 * races with the drain either lands in the swapped array or wakes the loop
 * again. In steady state no allocation happens: both arrays keep their
 * capacity.
 */
#include "loop.h"

#include "util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define LOOP_BATCH 64
#define HEAP_NONE SIZE_MAX

struct loop_io {
	struct loop *l;
	int fd;
	bool dead;
	loop_io_cb cb;
	void *arg;
	/* Live ios form a list so loop_free can release them; dead ones wait
	 * on l->dead until the iteration ends. */
	struct loop_io *prev, *next;
};

struct loop_timer {
	struct loop *l;
	uint64_t due;
	uint64_t seq; /* ties on `due` fire in arming order */
	size_t idx;   /* position in the heap, HEAP_NONE when not pending */
	bool firing;
	loop_timer_cb cb;
	void *arg;
};

struct loop_post_item {
	loop_post_cb cb;
	void *arg;
};

struct post_vec {
	struct loop_post_item *v;
	size_t n, cap;
};

struct loop_sig {
	loop_signal_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	uint64_t now;
	bool dispatching;
	atomic_bool stop;

	struct loop_io *ios;  /* live */
	struct loop_io *dead; /* deleted during this iteration */

	struct loop_timer **heap;
	size_t nheap, capheap;
	uint64_t next_seq;

	/* posts: `posts` and `closed` are guarded by `lock`. */
	pthread_mutex_t lock;
	bool closed;
	int evfd;
	struct loop_io *evio;
	struct post_vec posts, draining;

	struct loop_child *children; /* watched child processes */

	int sigfd;
	struct loop_io *sigio;
	sigset_t sigmask;
	struct loop_sig sigs[_NSIG];

	struct epoll_event events[LOOP_BATCH];
};

/* ---- timers: binary min-heap on (due, seq) ---- */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!timer_before(t, l->heap[parent]))
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && timer_before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!timer_before(l->heap[c], t))
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

static void heap_push(struct loop *l, struct loop_timer *t)
{
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? 2 * l->capheap : 16;
		l->heap = xrealloc(l->heap, l->capheap * sizeof(*l->heap));
	}
	heap_set(l, l->nheap++, t);
	heap_up(l, t->idx);
}

static void heap_remove(struct loop *l, struct loop_timer *t)
{
	size_t i = t->idx;
	struct loop_timer *last = l->heap[--l->nheap];

	t->idx = HEAP_NONE;
	if (last == t)
		return;
	heap_set(l, i, last);
	/* The moved element may belong above or below its new slot. */
	heap_up(l, i);
	heap_down(l, last->idx);
}

/* Outside dispatch the cached time may be stale (set-up code, or the gap
 * since the last iteration): refresh it so a timer armed then is measured
 * from the real present. */
static void refresh_now_outside_dispatch(struct loop *l)
{
	if (!l->dispatching)
		l->now = now_ms();
}

static void timer_arm(struct loop_timer *t, uint64_t ms)
{
	struct loop *l = t->l;

	refresh_now_outside_dispatch(l);
	t->due = ms > UINT64_MAX - l->now ? UINT64_MAX : l->now + ms;
	t->seq = l->next_seq++;
	if (t->idx == HEAP_NONE) {
		heap_push(l, t);
	} else {
		heap_up(l, t->idx);
		heap_down(l, t->idx);
	}
}

struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *arg)
{
	struct loop_timer *t = xcalloc(1, sizeof(*t));

	t->l = l;
	t->cb = cb;
	t->arg = arg;
	t->idx = HEAP_NONE;
	timer_arm(t, ms);
	return t;
}

void loop_timer_rearm(struct loop_timer *t, uint64_t ms) { timer_arm(t, ms); }

void loop_timer_cancel(struct loop_timer *t)
{
	if (!t)
		return;
	if (t->idx != HEAP_NONE)
		heap_remove(t->l, t);
	/* A timer cancelled from its own callback is freed by run_timers. */
	if (!t->firing)
		free(t);
}

/* Fires due timers. Only timers armed before this phase started (seq below
 * `limit`) fire, so a callback re-arming with 0 ms cannot starve the loop. */
static void run_timers(struct loop *l)
{
	uint64_t limit = l->next_seq;

	while (l->nheap > 0) {
		struct loop_timer *t = l->heap[0];

		if (t->due > l->now || t->seq >= limit)
			break;
		heap_remove(l, t);
		t->firing = true;
		t->cb(t, t->arg);
		t->firing = false;
		if (t->idx == HEAP_NONE)
			free(t);
	}
}

static int next_timeout(struct loop *l)
{
	uint64_t due, now;

	if (l->nheap == 0)
		return -1;
	due = l->heap[0]->due;
	now = now_ms();
	if (due <= now)
		return 0;
	return due - now > INT_MAX ? INT_MAX : (int)(due - now);
}

/* ---- io ---- */

static uint32_t to_epoll(uint32_t events)
{
	return ((events & LOOP_READ) ? EPOLLIN : 0u) | ((events & LOOP_WRITE) ? EPOLLOUT : 0u);
}

static uint32_t from_epoll(uint32_t ev)
{
	return ((ev & EPOLLIN) ? LOOP_READ : 0u) | ((ev & EPOLLOUT) ? LOOP_WRITE : 0u) |
	       ((ev & EPOLLHUP) ? LOOP_HUP : 0u) | ((ev & EPOLLERR) ? LOOP_ERR : 0u);
}

struct loop_io *loop_io_add(struct loop *l, int fd, uint32_t events, loop_io_cb cb, void *arg)
{
	struct loop_io *io = xcalloc(1, sizeof(*io));
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };

	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int saved = errno;

		free(io);
		errno = saved;
		return NULL;
	}
	io->l = l;
	io->fd = fd;
	io->cb = cb;
	io->arg = arg;
	io->next = l->ios;
	if (l->ios)
		l->ios->prev = io;
	l->ios = io;
	return io;
}

int loop_io_mod(struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.ptr = io };

	if (io->dead)
		return -EBADF;
	if (epoll_ctl(io->l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_io_del(struct loop_io *io)
{
	struct loop *l;

	if (!io || io->dead)
		return;
	l = io->l;
	/* Fails harmlessly if the caller already closed the fd. */
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->dead = true;
	if (io->prev)
		io->prev->next = io->next;
	else
		l->ios = io->next;
	if (io->next)
		io->next->prev = io->prev;
	if (!l->dispatching) {
		free(io);
		return;
	}
	io->next = l->dead;
	l->dead = io;
}

static void free_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_io *io = l->dead;

		l->dead = io->next;
		free(io);
	}
}

static void dispatch_io(struct loop *l, int n)
{
	for (int i = 0; i < n; i++) {
		struct loop_io *io = l->events[i].data.ptr;

		if (io->dead)
			continue;
		io->cb(io, io->fd, from_epoll(l->events[i].events), io->arg);
	}
}

/* ---- posts ---- */

static void post_wake_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct loop *l = arg;
	struct post_vec tmp;
	uint64_t v;

	(void)io;
	(void)revents;
	/* Read before swapping: see the header comment. */
	(void)!read(fd, &v, sizeof(v));
	pthread_mutex_lock(&l->lock);
	tmp = l->posts;
	l->posts = l->draining;
	pthread_mutex_unlock(&l->lock);
	for (size_t i = 0; i < tmp.n; i++)
		tmp.v[i].cb(tmp.v[i].arg);
	tmp.n = 0;
	l->draining = tmp;
}

/* Caller holds l->lock, which keeps loop_free from closing the eventfd
 * while we write it. */
static void wake_locked(struct loop *l)
{
	uint64_t one = 1;

	(void)!write(l->evfd, &one, sizeof(one));
}

static int post_vec_push(struct post_vec *pv, loop_post_cb cb, void *arg)
{
	if (pv->n == pv->cap) {
		size_t cap = pv->cap ? 2 * pv->cap : 64;
		struct loop_post_item *v = realloc(pv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		pv->v = v;
		pv->cap = cap;
	}
	pv->v[pv->n++] = (struct loop_post_item){ cb, arg };
	return 0;
}

int loop_post(struct loop *l, loop_post_cb cb, void *arg)
{
	int r;

	pthread_mutex_lock(&l->lock);
	if (l->closed) {
		r = -ESHUTDOWN;
	} else {
		r = post_vec_push(&l->posts, cb, arg);
		if (r == 0 && l->posts.n == 1)
			wake_locked(l);
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stop, true);
	pthread_mutex_lock(&l->lock);
	if (!l->closed)
		wake_locked(l);
	pthread_mutex_unlock(&l->lock);
}

/* ---- signals ---- */

static void signal_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct loop *l = arg;
	struct signalfd_siginfo si[8];
	ssize_t n;

	(void)io;
	(void)revents;
	while ((n = read(fd, si, sizeof(si))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(si[0]); i++) {
			uint32_t s = si[i].ssi_signo;

			if (s < _NSIG && l->sigs[s].cb)
				l->sigs[s].cb((int)s, l->sigs[s].arg);
		}
		if ((size_t)n < sizeof(si))
			break;
	}
}

int loop_signal_add(struct loop *l, int signo, loop_signal_cb cb, void *arg)
{
	sigset_t one, old;
	int fd, r;

	if (signo <= 0 || signo >= _NSIG || signo == SIGKILL || signo == SIGSTOP || !cb)
		return -EINVAL;
	if (l->sigs[signo].cb)
		return -EEXIST;
	/* Block first so no instance of the signal slips past the signalfd
	 * to its default action; restore the old mask if anything fails. */
	sigemptyset(&one);
	sigaddset(&one, signo);
	r = -pthread_sigmask(SIG_BLOCK, &one, &old);
	if (r < 0)
		return r;
	sigaddset(&l->sigmask, signo);
	fd = signalfd(l->sigfd, &l->sigmask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (l->sigfd < 0) {
		l->sigio = loop_io_add(l, fd, LOOP_READ, signal_cb, l);
		if (!l->sigio) {
			r = -errno;
			close(fd);
			goto fail;
		}
		l->sigfd = fd;
	}
	l->sigs[signo] = (struct loop_sig){ cb, arg };
	return 0;
fail:
	sigdelset(&l->sigmask, signo);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* ---- child processes ---- */

struct loop_child {
	struct loop *l;
	pid_t pid;
	int pidfd;
	struct loop_io *io;
	struct loop_timer *poll;
	bool firing;
	loop_child_cb cb;
	void *arg;
	struct loop_child *prev, *next;
};

/* A property of the kernel (or of valgrind): asked once per process. */
static atomic_bool no_pidfd;

static int si_wstatus(const siginfo_t *si)
{
	switch (si->si_code) {
	case CLD_EXITED: return (si->si_status & 0xff) << 8;
	case CLD_KILLED: return si->si_status & 0x7f;
	case CLD_DUMPED: return (si->si_status & 0x7f) | 0x80;
	default: return 0;
	}
}

static void child_unlink(struct loop_child *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		w->l->children = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

/* Peeks without reaping. 1: exited (*wstatus set, -1 when it is gone
 * already), 0: still running. */
static int child_peek(pid_t pid, int *wstatus)
{
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (errno == EINTR)
			return 0;
		*wstatus = -1;
		return 1;
	}
	if (si.si_pid == 0)
		return 0;
	*wstatus = si_wstatus(&si);
	return 1;
}

/* Reaps the zombie. Through the pidfd when there is one: it names this
 * process, so a pid reused meanwhile (the callback may have let someone
 * reap it) cannot be hit; without one, never blocking. */
static void child_reap(struct loop_child *w)
{
	siginfo_t si;

	if (w->pidfd >= 0) {
		while (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) < 0 &&
		       errno == EINTR)
			;
		return;
	}
	while (waitpid(w->pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}

/* The process has exited: tell the owner while it is a zombie, then reap. */
static void child_fire(struct loop_child *w, int wstatus)
{
	w->firing = true;
	child_unlink(w);
	loop_io_del(w->io);
	w->io = NULL;
	loop_timer_cancel(w->poll);
	w->poll = NULL;
	w->cb(w, w->pid, wstatus, w->arg);
	if (wstatus != -1)
		child_reap(w);
	safe_close(w->pidfd);
	free(w);
}

static void child_pidfd_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct loop_child *w = arg;
	int wstatus;

	(void)io;
	(void)fd;
	(void)revents;
	if (child_peek(w->pid, &wstatus))
		child_fire(w, wstatus);
}

static void child_poll_cb(struct loop_timer *t, void *arg)
{
	struct loop_child *w = arg;
	int wstatus;

	if (!child_peek(w->pid, &wstatus)) {
		loop_timer_rearm(t, LOOP_CHILD_POLL_MS);
		return;
	}
	w->poll = NULL; /* fired: the loop releases it */
	child_fire(w, wstatus);
}

struct loop_child *loop_child_add(struct loop *l, pid_t pid, loop_child_cb cb, void *arg)
{
	struct loop_child *w;
	int saved;

	if (pid <= 0 || !cb) {
		errno = EINVAL;
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	*w = (struct loop_child){ .l = l, .pid = pid, .pidfd = -1, .cb = cb, .arg = arg };
	if (!atomic_load(&no_pidfd)) {
		w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0u);
		if (w->pidfd < 0 && errno != ENOSYS)
			goto fail;
		if (w->pidfd < 0)
			atomic_store(&no_pidfd, true);
	}
	if (w->pidfd >= 0)
		w->io = loop_io_add(l, w->pidfd, LOOP_READ, child_pidfd_cb, w);
	else
		w->poll = loop_timer_add(l, LOOP_CHILD_POLL_MS, child_poll_cb, w);
	if (!w->io && !w->poll)
		goto fail;
	w->next = l->children;
	if (w->next)
		w->next->prev = w;
	l->children = w;
	return w;
fail:
	saved = errno;
	safe_close(w->pidfd);
	free(w);
	errno = saved;
	return NULL;
}

void loop_child_del(struct loop_child *w)
{
	if (!w || w->firing)
		return;
	child_unlink(w);
	loop_io_del(w->io);
	safe_close(w->pidfd);
	loop_timer_cancel(w->poll);
	free(w);
}

bool loop_child_watched(struct loop *l, pid_t pid)
{
	for (struct loop_child *w = l->children; w; w = w->next)
		if (w->pid == pid)
			return true;
	return false;
}

/* ---- lifecycle ---- */

struct loop *loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	int saved;

	l->sigfd = -1;
	l->evfd = -1;
	sigemptyset(&l->sigmask);
	atomic_init(&l->stop, false);
	pthread_mutex_init(&l->lock, NULL);
	l->now = now_ms();
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		goto fail;
	l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->evfd < 0)
		goto fail;
	l->evio = loop_io_add(l, l->evfd, LOOP_READ, post_wake_cb, l);
	if (!l->evio)
		goto fail;
	return l;
fail:
	saved = errno;
	loop_free(l);
	errno = saved;
	return NULL;
}

struct loop *loop_free(struct loop *l)
{
	if (!l)
		return NULL;
	/* From here on loop_post() drops its argument and returns an error. */
	pthread_mutex_lock(&l->lock);
	l->closed = true;
	pthread_mutex_unlock(&l->lock);

	while (l->children) /* watched processes stay unreaped: their owners' job */
		loop_child_del(l->children);
	free_dead(l);
	while (l->ios) {
		struct loop_io *io = l->ios;

		l->ios = io->next;
		free(io);
	}
	for (size_t i = 0; i < l->nheap; i++)
		free(l->heap[i]);
	free(l->heap);
	free(l->posts.v);
	free(l->draining.v);
	safe_close(l->sigfd);
	safe_close(l->evfd);
	safe_close(l->epfd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

uint64_t loop_now_ms(struct loop *l) { return l->now; }

static int loop_iterate(struct loop *l)
{
	int n = epoll_wait(l->epfd, l->events, LOOP_BATCH, next_timeout(l));

	if (n < 0) {
		if (errno != EINTR)
			return -errno;
		n = 0;
	}
	l->now = now_ms();
	l->dispatching = true;
	dispatch_io(l, n);
	run_timers(l);
	l->dispatching = false;
	free_dead(l);
	return 0;
}

int loop_run(struct loop *l)
{
	while (!atomic_exchange(&l->stop, false)) {
		int r = loop_iterate(l);

		if (r < 0)
			return r;
	}
	return 0;
}
