import CSmartPollPosix
import SmartPoll
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The supervisor's one thread of control: an epoll loop over every descriptor it owns (the
/// control socket and its clients, the pipes and pidfds of task processes, a signalfd) plus one
/// timerfd armed for the earliest of its timers, in the manner of sd-event and s6.
///
/// - Important: Not thread-safe: everything runs on the thread that calls ``run()``, which is
///   the point; callbacks may register, deregister and schedule freely, also for other
///   descriptors and timers.
/// - Complexity: registration and timers are O(log n); an idle loop blocks in `epoll_wait` and
///   uses no CPU.
final class EventLoop {
    /// What a descriptor is watched for, and what it turned out to be ready for.
    struct Events: OptionSet, Hashable {
        let rawValue: UInt32
        static let readable = Events(rawValue: UInt32(SP_READABLE))
        static let writable = Events(rawValue: UInt32(SP_WRITABLE))
        static let hangup = Events(rawValue: UInt32(SP_HANGUP))
        static let error = Events(rawValue: UInt32(SP_ERROR))
    }

    /// Identifies a scheduled timer, for ``cancel(_:)``.
    struct TimerID: Hashable {
        fileprivate let value: UInt64
    }

    private let epoll: Int32
    private let timerDescriptor: Int32
    private var handlers: [Int32: (Events) -> Void] = [:]
    private var timers = TimerQueue()
    private var armedDeadline: Int64 = 0
    private var stopping = false

    init() throws(SupervisorError) {
        epoll = sp_epoll_create()
        guard epoll >= 0 else { throw SupervisorError.systemCall("epoll_create1", errno: errno) }
        timerDescriptor = sp_timerfd_create()
        guard timerDescriptor >= 0 else {
            close(epoll)
            throw SupervisorError.systemCall("timerfd_create", errno: errno)
        }
        guard sp_epoll_control(epoll, 0, timerDescriptor, UInt32(SP_READABLE)) == 0 else {
            close(epoll)
            close(timerDescriptor)
            throw SupervisorError.systemCall("epoll_ctl", errno: errno)
        }
    }

    /// One 64 KiB buffer for every read done on this loop's thread (client requests, task
    /// output): each read's bytes are consumed before the next read.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)

    deinit {
        readBuffer.deallocate()
        close(timerDescriptor)
        close(epoll)
    }

    /// CLOCK_MONOTONIC, in nanoseconds.
    var now: Int64 { sp_monotonic_ns() }

    // MARK: Descriptors

    /// Watches `descriptor` for `interest` (level-triggered) and calls `handler` with what it is
    /// ready for. The caller keeps owning the descriptor and must ``deregister(_:)`` it before
    /// closing it.
    func register(_ descriptor: Int32, for interest: Events, _ handler: @escaping (Events) -> Void) throws(SupervisorError) {
        guard sp_epoll_control(epoll, 0, descriptor, interest.rawValue) == 0 else {
            throw SupervisorError.systemCall("epoll_ctl(ADD)", errno: errno)
        }
        handlers[descriptor] = handler
    }

    /// Changes what a registered descriptor is watched for (empty: nothing, but stay registered).
    func watch(_ descriptor: Int32, for interest: Events) {
        _ = sp_epoll_control(epoll, 1, descriptor, interest.rawValue)
    }

    func deregister(_ descriptor: Int32) {
        guard handlers.removeValue(forKey: descriptor) != nil else { return }
        _ = sp_epoll_control(epoll, 2, descriptor, 0)
    }

    /// Forgets a descriptor that the caller closes right after, without a system call: closing
    /// the last descriptor of an open file takes it out of the epoll set. Only for descriptors
    /// that were never duplicated (pipes' read ends, pidfds, accepted sockets: all close-on-exec,
    /// so no child keeps a copy past its exec).
    func forget(_ descriptor: Int32) {
        handlers.removeValue(forKey: descriptor)
    }

    // MARK: Timers

    /// Calls `action` once at or after the CLOCK_MONOTONIC time `deadline` (nanoseconds).
    @discardableResult
    func schedule(at deadline: Int64, _ action: @escaping () -> Void) -> TimerID {
        let id = timers.insert(deadline: deadline, action: action)
        rearm()
        return TimerID(value: id)
    }

    @discardableResult
    func schedule(after delay: Duration, _ action: @escaping () -> Void) -> TimerID {
        let (sum, overflow) = now.addingReportingOverflow(delay.nanosecondsClamped)
        return schedule(at: overflow ? .max : sum, action)
    }

    /// Cancels a timer that has not fired; does nothing otherwise.
    func cancel(_ timer: TimerID) {
        timers.cancel(timer.value)
    }

    private func rearm() {
        let deadline = timers.earliestDeadline ?? 0
        guard deadline != armedDeadline else { return }
        armedDeadline = deadline
        // A deadline of 0 disarms; a deadline in the past fires at once.
        _ = sp_timerfd_arm(timerDescriptor, deadline == 0 ? 0 : max(deadline, 1))
    }

    // MARK: Running

    /// Dispatches readiness and timers until ``stop()`` is called from a callback.
    func run() throws(SupervisorError) {
        stopping = false
        var ready = [sp_ready](repeating: sp_ready(), count: 256)
        while !stopping {
            let count = sp_epoll_wait(epoll, &ready, Int32(ready.count), -1)
            guard count >= 0 else { throw SupervisorError.systemCall("epoll_wait", errno: errno) }
            for index in 0..<Int(count) where !stopping {
                let descriptor = ready[index].fd
                if descriptor == timerDescriptor {
                    sp_timerfd_drain(timerDescriptor)
                    armedDeadline = 0
                    fireDueTimers()
                } else if let handler = handlers[descriptor] {
                    handler(Events(rawValue: ready[index].events))
                }
            }
            runDeferred()
        }
        runDeferred()
    }

    private var deferred: [() -> Void] = []

    /// Calls `action` once the events of the current wake-up have all been handled (or at
    /// once-ish: before the loop next waits). Output that many events produce together (the
    /// events of a run's end and the next run's start) leaves in one write this way.
    func deferUntilIdle(_ action: @escaping () -> Void) {
        deferred.append(action)
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let actions = deferred
            deferred = []
            for action in actions { action() }
        }
    }

    /// Ends ``run()`` after the current callback returns.
    func stop() {
        stopping = true
    }

    private func fireDueTimers() {
        let current = now
        while !stopping, let action = timers.popDue(now: current) {
            action()
        }
        rearm()
    }
}

/// Timers by deadline: a binary min-heap with lazy deletion of cancelled entries.
private struct TimerQueue {
    private struct Entry {
        var deadline: Int64
        var id: UInt64
    }

    private var heap: [Entry] = []
    private var actions: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 0

    var earliestDeadline: Int64? {
        mutating get {
            dropCancelled()
            return heap.first?.deadline
        }
    }

    mutating func insert(deadline: Int64, action: @escaping () -> Void) -> UInt64 {
        nextID += 1
        actions[nextID] = action
        heap.append(Entry(deadline: deadline, id: nextID))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
        return nextID
    }

    mutating func cancel(_ id: UInt64) {
        actions[id] = nil
    }

    mutating func popDue(now: Int64) -> (() -> Void)? {
        dropCancelled()
        guard let first = heap.first, first.deadline <= now else { return nil }
        removeFirst()
        return actions.removeValue(forKey: first.id)
    }

    private mutating func dropCancelled() {
        while let first = heap.first, actions[first.id] == nil { removeFirst() }
    }

    private func precedes(_ left: Entry, _ right: Entry) -> Bool {
        left.deadline < right.deadline || (left.deadline == right.deadline && left.id < right.id)
    }

    private mutating func removeFirst() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            let right = left + 1
            let child = right < heap.count && precedes(heap[right], heap[left]) ? right : left
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            parent = child
        }
    }
}
