import CSmartPollPosix
import Glibc
import SmartPoll
import SmartPollSystem

/// The supervisor's one thread of control: an epoll loop over every descriptor it owns (the
/// control socket and its clients, the pipes and pidfds of task processes, a signalfd) plus one
/// timerfd armed for the earliest of its timers, in the manner of sd-event and s6.
///
/// Each registration gets a ``Registration`` token, which epoll keeps as the data of its events:
/// an event whose token is not the descriptor's current registration is dropped. So an event
/// for a descriptor closed by an earlier callback of the same wake-up (and its number perhaps
/// reused by a new registration) never reaches the number's new owner.
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

    /// One registration of a descriptor: its number and a generation no other registration of
    /// this loop has, packed into the 64 bits of epoll's data (generation high, number low).
    ///
    /// The calls that take a registration instead of a number do nothing once it is stale
    /// (deregistered or forgotten), even when its number has been registered again since.
    struct Registration: Hashable {
        let descriptor: Int32
        fileprivate let generation: UInt32

        fileprivate init(descriptor: Int32, generation: UInt32) {
            self.descriptor = descriptor
            self.generation = generation
        }

        fileprivate init(token: UInt64) {
            descriptor = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
            generation = UInt32(truncatingIfNeeded: token >> 32)
        }

        fileprivate var token: UInt64 {
            UInt64(generation) << 32 | UInt64(UInt32(bitPattern: descriptor))
        }
    }

    private struct Watcher {
        let generation: UInt32
        let handler: (Events) -> Void
    }

    /// The watchers by descriptor number: an array indexed by the number, since descriptors
    /// are small and dense (the lowest free number is reused); a dictionary hashed the number
    /// at every event, registration and removal, a dozen times a task run.
    private struct WatcherTable {
        private var slots: [Watcher?] = []

        subscript(descriptor: Int32) -> Watcher? {
            get {
                let index = Int(descriptor)
                return index >= 0 && index < slots.count ? slots[index] : nil
            }
            set {
                let index = Int(descriptor)
                guard index >= 0 else { return }
                if index >= slots.count {
                    guard newValue != nil else { return }
                    slots.append(contentsOf: repeatElement(nil, count: index + 1 - slots.count))
                }
                slots[index] = newValue
            }
        }

        @discardableResult
        mutating func removeValue(forKey descriptor: Int32) -> Watcher? {
            let watcher = self[descriptor]
            if watcher != nil { self[descriptor] = nil }
            return watcher
        }
    }

    private let epoll: Int32
    private let timerDescriptor: Int32
    /// Generation 0 is the timerfd's; descriptors get 1 and up.
    private let timerRegistration: Registration
    private var watchers = WatcherTable()
    private var lastGeneration: UInt32 = 0
    private var timers = TimerQueue()
    private var armedDeadline: Int64 = 0
    /// Why the timerfd could not be armed or read: ``run()`` throws it, since no timer would fire.
    private var timerFailure: SupervisorError?
    private var stopping = false

    init() throws(SupervisorError) {
        do throws(Errno) {
            epoll = try SystemCall.checking { sp_epoll_create() }
        } catch {
            throw SupervisorError.systemCall("epoll_create1", errno: error.rawValue)
        }
        do throws(Errno) {
            timerDescriptor = try SystemCall.checking { sp_timerfd_create() }
        } catch {
            SystemCall.close(epoll)
            throw SupervisorError.systemCall("timerfd_create", errno: error.rawValue)
        }
        timerRegistration = Registration(descriptor: timerDescriptor, generation: 0)
        do throws(Errno) {
            _ = try SystemCall.checking {
                sp_epoll_control(epoll, SP_EPOLL_ADD, timerDescriptor, UInt32(SP_READABLE), timerRegistration.token)
            }
        } catch {
            SystemCall.close(epoll)
            SystemCall.close(timerDescriptor)
            throw SupervisorError.systemCall("epoll_ctl", errno: error.rawValue)
        }
    }

    /// One 64 KiB buffer for every read done on this loop's thread (client requests, task
    /// output): each read's bytes are consumed before the next read.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)

    deinit {
        readBuffer.deallocate()
        SystemCall.close(timerDescriptor)
        SystemCall.close(epoll)
    }

    /// CLOCK_MONOTONIC, in nanoseconds.
    var now: Int64 { sp_monotonic_ns() }

    // MARK: Descriptors

    /// Watches `descriptor` for `interest` (level-triggered) and calls `handler` with what it is
    /// ready for, until the registration is deregistered or forgotten. The caller keeps owning
    /// the descriptor and must ``deregister(_:)`` or ``forget(_:)`` it before closing it.
    ///
    /// - Returns: the registration, for the calls that do nothing once it is stale.
    /// - Throws: when epoll refuses the descriptor (already registered, closed, or a regular
    ///   file).
    @discardableResult
    func register(
        _ descriptor: Int32, for interest: Events, _ handler: @escaping (Events) -> Void
    )
        throws(SupervisorError) -> Registration
    {
        let registration = Registration(descriptor: descriptor, generation: nextGeneration())
        do throws(Errno) {
            _ = try SystemCall.checking {
                sp_epoll_control(epoll, SP_EPOLL_ADD, descriptor, interest.rawValue, registration.token)
            }
        } catch {
            throw SupervisorError.systemCall("epoll_ctl(ADD)", errno: error.rawValue)
        }
        watchers[descriptor] = Watcher(generation: registration.generation, handler: handler)
        return registration
    }

    /// A generation that no live registration has: 0 is the timerfd's, and a wrap past 2^32
    /// registrations meets no generation of an event still in flight (a wake-up's events are
    /// all dispatched before the next wait).
    private func nextGeneration() -> UInt32 {
        lastGeneration &+= 1
        if lastGeneration == 0 { lastGeneration = 1 }
        return lastGeneration
    }

    /// Whether `registration` is the current one of its descriptor.
    func isCurrent(_ registration: Registration) -> Bool {
        watchers[registration.descriptor]?.generation == registration.generation
    }

    /// Changes what a registered descriptor is watched for (empty: nothing, but stay
    /// registered). Does nothing for a descriptor that is not registered.
    func watch(_ descriptor: Int32, for interest: Events) {
        guard let watcher = watchers[descriptor] else { return }
        modify(Registration(descriptor: descriptor, generation: watcher.generation), interest)
    }

    /// Changes what `registration` is watched for; does nothing once it is stale.
    func watch(_ registration: Registration, for interest: Events) {
        guard isCurrent(registration) else { return }
        modify(registration, interest)
    }

    private func modify(_ registration: Registration, _ interest: Events) {
        let descriptor = registration.descriptor
        let result = sp_epoll_control(epoll, SP_EPOLL_MOD, descriptor, interest.rawValue, registration.token)
        // EPOLL_CTL_MOD fails only for a descriptor that is not in the set (ENOENT, EBADF): one
        // closed before it was deregistered, against the contract of register(_:for:_:).
        // Nothing can be done about it here; a debug build stops at the bug.
        assert(result == 0, "epoll_ctl(MOD) of descriptor \(descriptor): \(Errno(rawValue: errno))")
    }

    /// Stops watching `descriptor` and forgets its handler; does nothing for a descriptor that is
    /// not registered.
    func deregister(_ descriptor: Int32) {
        guard watchers.removeValue(forKey: descriptor) != nil else { return }
        remove(descriptor)
    }

    /// Stops watching the descriptor of `registration`; does nothing once it is stale.
    func deregister(_ registration: Registration) {
        guard isCurrent(registration) else { return }
        watchers.removeValue(forKey: registration.descriptor)
        remove(registration.descriptor)
    }

    /// For a descriptor a library owns and may close before it says so (libcurl reports a
    /// socket gone after closing it on some paths): changes what `registration` is watched for,
    /// or, when the descriptor has left the epoll set (closed, its number perhaps reused by a new
    /// file), forgets the registration and returns false: register the descriptor again.
    func watchForeign(_ registration: Registration, for interest: Events) -> Bool {
        guard isCurrent(registration) else { return false }
        let descriptor = registration.descriptor
        if sp_epoll_control(epoll, SP_EPOLL_MOD, descriptor, interest.rawValue, registration.token) == 0 { return true }
        watchers.removeValue(forKey: descriptor)
        return false
    }

    /// For a descriptor a library owns: stops watching it whether or not it is still open (a
    /// closed one left the epoll set by itself); does nothing once the registration is stale.
    func deregisterForeign(_ registration: Registration) {
        guard isCurrent(registration) else { return }
        watchers.removeValue(forKey: registration.descriptor)
        _ = sp_epoll_control(epoll, SP_EPOLL_DEL, registration.descriptor, 0, 0)
    }

    private func remove(_ descriptor: Int32) {
        let result = sp_epoll_control(epoll, SP_EPOLL_DEL, descriptor, 0, 0)
        // EPOLL_CTL_DEL fails only for a descriptor closed before it was deregistered (EBADF,
        // or ENOENT), against the contract of register(_:for:_:). The handler is gone either
        // way, and an event still in the set for it carries a token that is dropped.
        assert(result == 0, "epoll_ctl(DEL) of descriptor \(descriptor): \(Errno(rawValue: errno))")
    }

    /// Forgets a descriptor that the caller closes right after, without a system call: closing
    /// the last descriptor of an open file takes it out of the epoll set. Only for descriptors
    /// that were never duplicated (pipes' read ends, pidfds, accepted sockets: all close-on-exec,
    /// so no child keeps a copy past its exec); should a copy keep the file in the set, its
    /// events carry this registration's token and are dropped.
    func forget(_ descriptor: Int32) {
        watchers.removeValue(forKey: descriptor)
    }

    /// Forgets `registration` as forgetting its number does; does nothing once it is stale.
    func forget(_ registration: Registration) {
        guard isCurrent(registration) else { return }
        watchers.removeValue(forKey: registration.descriptor)
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
        do throws(Errno) {
            _ = try SystemCall.checking { sp_timerfd_arm(timerDescriptor, deadline == 0 ? 0 : max(deadline, 1)) }
        } catch {
            // Only a broken timerfd fails (EBADF, EINVAL): no timer could fire any more.
            timerFailure = timerFailure ?? .systemCall("timerfd_settime", errno: error.rawValue)
        }
    }

    // MARK: Running

    /// Dispatches readiness and timers until ``stop()`` is called from a callback.
    ///
    /// - Throws: when epoll or the timerfd fails (a broken descriptor, not a load: the loop
    ///   cannot go on without them).
    func run() throws(SupervisorError) {
        stopping = false
        var ready = [sp_ready](repeating: sp_ready(), count: 256)
        while !stopping {
            if let timerFailure { throw timerFailure }
            let count: Int32
            // Work carried over to the next turn only looks at what is ready now.
            let timeout: Int32 = nextTurn.isEmpty ? -1 : 0
            turn &+= 1
            do throws(Errno) {
                // Not retried here: sp_epoll_wait reports EINTR as an empty wait.
                count = try SystemCall.checking { sp_epoll_wait(epoll, &ready, Int32(ready.count), timeout) }
            } catch {
                throw SupervisorError.systemCall("epoll_wait", errno: error.rawValue)
            }
            for index in 0..<Int(count) where !stopping {
                let registration = Registration(token: ready[index].token)
                if registration == timerRegistration {
                    do throws(Errno) {
                        _ = try SystemCall.checking { sp_timerfd_drain(timerDescriptor) }
                    } catch {
                        throw SupervisorError.systemCall("read(timerfd)", errno: error.rawValue)
                    }
                    armedDeadline = 0
                    fireDueTimers()
                } else if let watcher = watchers[registration.descriptor],
                    watcher.generation == registration.generation
                {
                    watcher.handler(Events(rawValue: ready[index].events))
                }
                // Otherwise the registration was deregistered or forgotten by an earlier callback
                // of this wake-up, and its number may belong to a new registration already.
            }
            runNextTurn()
            runDeferred()
        }
        runDeferred()
    }

    private var nextTurn: [() -> Void] = []

    /// The number of the current turn: one more at each wait for events (see ``callNextTurn(_:)``).
    private(set) var turn: UInt64 = 0

    /// Calls `action` once the events of this wake-up have been handled: at the end of this
    /// turn when called while they are (same ``turn``), at the end of the next turn when called
    /// from such an action, after a wait that does not block and the handling of whatever it
    /// found ready (timers, signals, other descriptors). A source with more work than one turn
    /// allows (a flooding pipe, a client's pipelined requests, a reply encoded in slices, a
    /// crowd of runs to start) does a bounded part, then carries the rest over this way, so
    /// that everyone else waits at most one bounded turn.
    func callNextTurn(_ action: @escaping () -> Void) {
        nextTurn.append(action)
    }

    /// Calls the actions carried over before this turn; those they carry over in turn wait for
    /// the next one.
    private func runNextTurn() {
        guard !nextTurn.isEmpty else { return }
        let actions = nextTurn
        nextTurn = []
        for action in actions where !stopping { action() }
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
